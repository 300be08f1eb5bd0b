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
from etam_jax.inference.mask_generator import MaskGenerator
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
    return official, ours


def official_generate(official, image, monkeypatch, **kw):
    monkeypatch.setattr(sam2.utils.misc, "get_connected_components", scipy_connected_components)
    ref = SAM2AutomaticMaskGenerator(official, output_mode="coco_rle", **kw)
    ref.predictor._bb_feat_sizes = [(SIZE // 16, SIZE // 16)]  # EfficientTAM: one level
    return ref.generate(image)


def decode(record) -> np.ndarray:
    rle = dict(record["segmentation"], counts=record["segmentation"]["counts"].encode())
    return mask_utils.decode(rle).astype(bool)


def assert_same_masks(ours: list[dict], ref: list[dict]) -> list[float]:
    """Pairs each official record with ours (same click and crop, best mask IoU); the IoUs."""
    assert len(ours) == len(ref)
    unused, ious = set(range(len(ours))), []
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
        best = candidates[int(np.argmax(scores))]
        unused.remove(best)
        ious.append(max(scores))
        assert max(scores) >= 0.99
        assert abs(ours[best]["predicted_iou"] - r["predicted_iou"]) <= 1e-3
        assert abs(ours[best]["stability_score"] - r["stability_score"]) <= 1e-2
        assert ours[best]["segmentation"]["size"] == r["segmentation"]["size"]
    return ious


GRID = dict(points_per_side=8, points_per_batch=24, pred_iou_thresh=0.5, stability_score_thresh=0.1)


@pytest.mark.parametrize(
    "options",
    [
        pytest.param(dict(GRID, box_nms_thresh=1.0), id="grid"),
        pytest.param(
            dict(
                points_per_side=4,
                pred_iou_thresh=0.0,
                stability_score_thresh=0.0,
                crop_n_layers=1,
                min_mask_region_area=12,
            ),
            id="crops_cleanup",
        ),
        pytest.param(
            dict(
                points_per_side=4,
                pred_iou_thresh=0.0,
                stability_score_thresh=0.0,
                box_nms_thresh=1.0,
                use_m2m=True,
            ),
            id="m2m",
        ),
    ],
)
def test_matches_official(models, monkeypatch, options):
    official, model = models
    image = smooth_image(HW, seed=SEED)
    t0 = time.perf_counter()
    ref = official_generate(official, image, monkeypatch, **options)
    t1 = time.perf_counter()
    ours = MaskGenerator(model, output_mode="coco_rle", **options).generate(image)
    t2 = time.perf_counter()
    areas = sorted(r["area"] for r in ref)
    print(f"{len(ref)} masks, areas {areas}; official {t1 - t0:.1f} s, ours {t2 - t1:.1f} s")
    assert len(ref) >= 3, "too few masks survive: the test proves little"
    assert_same_masks(ours, ref)
