"""Automatic mask generation against the official ``SAM2AutomaticMaskGenerator``, and `segment --auto`.

Every weight is random (``build_official`` + ``randomize_``, copied into ours).
Random-weight masks are textures spread over the whole image, so their boxes
nearly all equal the image box; box NMS at the official 0.7 then keeps one
mask per crop. The grid test therefore switches box NMS off (threshold 1.0)
to compare many masks; the crop test keeps the NMS on and lets low-quality
masks through (thresholds 0), whose varied boxes exercise it.

``torchvision_shim`` stands in for torchvision's ``batched_nms``/``box_area``
(plain torch, as torchvision implements them); the official small-region
cleanup needs a CUDA extension (``sam2._C``) for connected components, so the
tests give it ``scipy.ndimage.label`` (8-connectivity) instead.

Tolerances: same number of masks; each official mask has one of ours from the
same click and crop with mask IoU >= 0.99, predicted IoU within 1e-3 and
stability score within 1e-2.
"""

import json
import time

import numpy as np
import pytest
import scipy.ndimage
import torch
from flax import nnx
from PIL import Image
from pycocotools import mask as mask_utils

from etam_jax import cli
from etam_jax.convert.naming import load_torch_arrays
from etam_jax.inference import crop_boxes as crops
from etam_jax.inference.box_nms import nms
from etam_jax.inference.image_predictor import ImagePredictor
from etam_jax.inference.mask_cleanup import remove_small_regions
from etam_jax.inference.mask_generator import MaskGenerator
from etam_jax.inference.mask_rle import coco_encode_rle, mask_to_rle, rle_to_mask
from etam_jax.inference.mask_scores import mask_boxes, stability_score
from etam_jax.models.build import build_model
from tests.inference import torchvision_shim
from tests.inference.test_image_predictor import smooth_image
from tests.official_reference import build_official, state_dict_numpy

torchvision_shim.install()
import sam2.utils.misc
from sam2.automatic_mask_generator import SAM2AutomaticMaskGenerator

SIZE = 256  # model resolution: small and fast
HW = (96, 128)
SEED = 1


def scipy_connected_components(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``sam2.utils.misc.get_connected_components`` (8-connectivity) without CUDA."""
    labels = np.zeros(mask.shape, np.int64)
    counts = np.zeros(mask.shape, np.int64)
    for i, m in enumerate(mask[:, 0].numpy().astype(bool)):
        lab, _ = scipy.ndimage.label(m, structure=np.ones((3, 3)))
        labels[i, 0] = lab
        counts[i, 0] = np.where(lab > 0, np.bincount(lab.ravel())[lab], 0)
    return torch.from_numpy(labels), torch.from_numpy(counts)


@pytest.fixture(scope="module")
def models():
    official = build_official("efficienttam_ti", SIZE, seed=SEED)
    official.sam_mask_decoder.dynamic_multimask_via_stability = True  # build_sam2's default
    ours = nnx.eval_shape(
        lambda: build_model("efficienttam_ti", image_size=SIZE, apply_postprocessing=True)
    )
    load_torch_arrays(ours, state_dict_numpy(official), source="official")
    return official, ImagePredictor(ours)  # one predictor: compiled once for every test


def official_generate(official, image, monkeypatch, **kw):
    monkeypatch.setattr(sam2.utils.misc, "get_connected_components", scipy_connected_components)
    ref = SAM2AutomaticMaskGenerator(official, output_mode="coco_rle", **kw)
    ref.predictor._bb_feat_sizes = [(SIZE // 16, SIZE // 16)]  # EfficientTAM: one level
    return ref.generate(image)


def decode(record) -> np.ndarray:
    rle = dict(record["segmentation"], counts=record["segmentation"]["counts"].encode())
    return mask_utils.decode(rle).astype(bool)


def assert_same_masks(ours: list[dict], ref: list[dict]) -> dict[str, float]:
    """Pairs each official record with ours (same click and crop, best mask IoU).

    Returns:
      the worst mask IoU and score differences over the pairs.
    """
    assert len(ours) == len(ref)
    unused, worst = set(range(len(ours))), {"mask_iou": 1.0, "d_iou": 0.0, "d_stability": 0.0}
    for r in ref:
        rm = decode(r)
        candidates = [
            i
            for i in unused
            if np.allclose(ours[i]["point_coords"], r["point_coords"])
            and ours[i]["crop_box"] == r["crop_box"]
        ]
        assert candidates, f"no mask of ours from click {r['point_coords']} crop {r['crop_box']}"
        masks = [decode(ours[i]) for i in candidates]
        scores = [(m & rm).sum() / (m | rm).sum() if (m | rm).any() else 1.0 for m in masks]
        best = ours[candidates[int(np.argmax(scores))]]
        unused.remove(candidates[int(np.argmax(scores))])
        assert best["segmentation"]["size"] == r["segmentation"]["size"]
        worst["mask_iou"] = min(worst["mask_iou"], max(scores))
        for key, name in (("predicted_iou", "d_iou"), ("stability_score", "d_stability")):
            worst[name] = max(worst[name], abs(best[key] - r[key]))
    assert worst["mask_iou"] >= 0.99, worst
    assert worst["d_iou"] <= 1e-3 and worst["d_stability"] <= 1e-2, worst
    return worst


GRID = {
    "points_per_side": 8,
    "points_per_batch": 24,  # 64 clicks: the last batch is padded
    "pred_iou_thresh": 0.5,
    "stability_score_thresh": 0.1,
}


@pytest.mark.parametrize(
    "options",
    [
        pytest.param({**GRID, "box_nms_thresh": 1.0}, id="grid"),
        pytest.param(
            {
                "points_per_side": 4,
                "pred_iou_thresh": 0.0,
                "stability_score_thresh": 0.0,
                "crop_n_layers": 1,
                "min_mask_region_area": 12,
            },
            id="crops_cleanup",
        ),
        pytest.param(
            {
                "points_per_side": 4,
                "pred_iou_thresh": 0.0,
                "stability_score_thresh": 0.0,
                "box_nms_thresh": 1.0,
                "use_m2m": True,
            },
            id="m2m",
        ),
    ],
)
def test_matches_official(models, monkeypatch, options):
    official, predictor = models
    image = smooth_image(HW, seed=SEED)
    t0 = time.perf_counter()
    ref = official_generate(official, image, monkeypatch, **options)
    t1 = time.perf_counter()
    ours = MaskGenerator(predictor, output_mode="coco_rle", **options).generate(image)
    t2 = time.perf_counter()
    areas = sorted(r["area"] for r in ref)
    print(f"{len(ref)} masks, areas {areas}; official {t1 - t0:.1f} s, ours {t2 - t1:.1f} s")
    assert len(ref) >= 3, "too few masks survive: the test proves little"
    print(assert_same_masks(ours, ref))


@pytest.fixture(scope="module")
def cli_case(models, tmp_path_factory):
    """A random-weight checkpoint (the `models` weights) and an image on disk."""
    root = tmp_path_factory.mktemp("segment_auto")
    torch.save({"model": models[0].state_dict()}, root / "w.pt")
    Image.fromarray(smooth_image(HW, seed=SEED)).save(root / "img.png")
    (root / "p.json").write_text(json.dumps([{"obj_id": 1, "points": [[5, 5]], "labels": [1]}]))
    return root


def segment(root, *extra, out="out"):
    args = ["segment", "--model", "efficienttam_ti", "--checkpoint", str(root / "w.pt")]
    args += ["--image", str(root / "img.png"), "--out", str(root / out)]
    return cli.main([*args, "--image-size", str(SIZE), *extra])


CLI_OPTIONS = {
    "points_per_side": 4,
    "pred_iou_thresh": 0.0,
    "stability_score_thresh": 0.0,
    "box_nms_thresh": 1.0,
}


def test_segment_auto_writes_masks_and_overlay(models, cli_case, monkeypatch):
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in CLI_OPTIONS.items()]
    assert segment(cli_case, "--auto", *flags) == 0
    out = cli_case / "out"
    assert sorted(p.name for p in out.iterdir()) == ["masks.json", "overlay.png"]
    records = json.loads((out / "masks.json").read_text())
    image = np.asarray(Image.open(cli_case / "img.png"))
    ref = official_generate(models[0], image, monkeypatch, **CLI_OPTIONS)
    assert len(ref) >= 3
    assert_same_masks(records, ref)
    for r in records:
        assert set(r) == set(ref[0])
        assert isinstance(r["segmentation"]["counts"], str)
        assert r["area"] == decode(r).sum()
    union = np.any([decode(r) for r in records], axis=0)
    overlay = np.asarray(Image.open(out / "overlay.png"))
    assert overlay.shape == image.shape
    np.testing.assert_array_equal(overlay[~union], image[~union])  # only masks are painted
    assert np.any(overlay[union] != image[union])


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--auto", "--prompts", "p.json"], "exactly one of --prompts"),
        ([], "exactly one of --prompts"),
        (["--auto", "--points-per-side", "0"], "--points-per-side: must be >= 1, found 0"),
        (["--auto", "--pred-iou-thresh", "1.5"], "--pred-iou-thresh: must be in [0.0, 1.0]"),
        (["--prompts", "p.json", "--crop-n-layers", "1"], "--crop-n-layers: only with --auto"),
        (["--auto", "--image", "missing.png"], "missing.png: no such file"),
        (["--auto", "--checkpoint", "missing.pt"], "--checkpoint"),
    ],
)
def test_segment_auto_bad_input(cli_case, capsys, extra, message):
    extra = [str(cli_case / a) if a.endswith((".json", ".png", ".pt")) else a for a in extra]
    assert segment(cli_case, *extra, out="bad") == 1
    assert message in capsys.readouterr().err
    assert not (cli_case / "bad").exists()


def test_segment_auto_refuses_non_empty_out(cli_case, capsys):
    (cli_case / "full").mkdir()
    (cli_case / "full" / "x").write_text("")
    assert segment(cli_case, "--auto", out="full") == 1
    assert "already exists and is not empty" in capsys.readouterr().err


# The host-side pieces alone, on inputs where the full pipeline rarely goes (against sam2.utils.amg).


@pytest.mark.parametrize("hw,layers", [((96, 128), 1), ((1500, 2000), 2), ((77, 33), 3)])
def test_crop_boxes_and_grids_match_official(hw, layers):
    from sam2.utils import amg

    assert crops.generate_crop_boxes(hw, layers, 512 / 1500) == amg.generate_crop_boxes(
        hw, layers, 512 / 1500
    )
    for ours, ref in zip(
        crops.build_all_layer_point_grids(10, layers, 2),
        amg.build_all_layer_point_grids(10, layers, 2),
    ):
        np.testing.assert_array_equal(ours, ref)


def random_masks(seed: int, n=12, hw=(23, 31)) -> np.ndarray:
    """Blobby random masks, with an empty, a full and a one-pixel one."""
    rng = np.random.default_rng(seed)
    masks = scipy.ndimage.uniform_filter(rng.normal(size=(n, *hw)), size=(1, 5, 5)) > 0.1
    masks[0], masks[1], masks[2] = False, True, False
    masks[2, 5, 7] = True
    return masks


def test_rle_boxes_and_stability_match_official():
    from sam2.utils import amg

    masks = random_masks(0)
    ours = mask_to_rle(masks)
    assert ours == amg.mask_to_rle_pytorch(torch.from_numpy(masks))
    for rle, mask in zip(ours, masks):
        np.testing.assert_array_equal(rle_to_mask(rle), mask)
        assert coco_encode_rle(rle) == amg.coco_encode_rle(rle)
    ref_boxes = amg.batched_mask_to_box(torch.from_numpy(masks)).numpy()
    np.testing.assert_array_equal(np.asarray(mask_boxes(masks)), ref_boxes)
    logits = np.random.default_rng(1).normal(0, 3, (6, 40, 50)).astype(np.float32)
    ref = amg.calculate_stability_score(torch.from_numpy(logits), 0.5, 1.0).numpy()
    np.testing.assert_allclose(np.asarray(stability_score(logits, 0.5, 1.0)), ref, rtol=1e-6)


def test_nms_and_cleanup_match_official(monkeypatch):
    from sam2.utils.transforms import SAM2Transforms

    rng = np.random.default_rng(2)
    corners = rng.integers(0, 40, (60, 2, 2))
    boxes = np.concatenate([corners.min(1), corners.max(1)], axis=1).astype(np.float32)
    scores = rng.integers(0, 5, 60).astype(np.float32)  # many ties: order must be stable
    for thresh in (0.3, 0.7):
        ref = torchvision_shim.batched_nms(
            torch.from_numpy(boxes), torch.from_numpy(scores), torch.zeros(60), thresh
        )
        np.testing.assert_array_equal(nms(boxes, scores, thresh), ref.numpy())
    monkeypatch.setattr(sam2.utils.misc, "get_connected_components", scipy_connected_components)
    logits = np.where(random_masks(3, hw=(32, 32)), 2.0, -2.0).astype(np.float32)
    transforms = SAM2Transforms(32, mask_threshold=0.0, max_hole_area=6, max_sprinkle_area=6)
    ref = transforms.postprocess_masks(torch.from_numpy(logits)[:, None], (32, 32))[:, 0]
    np.testing.assert_allclose(remove_small_regions(logits, 6), ref.numpy(), atol=1e-5)
