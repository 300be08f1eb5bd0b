"""`etam segment`: outputs against the official image predictor, and every kind of bad input."""

import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from etam_jax import cli
from tests.inference import torchvision_shim
from tests.inference.prompt_matrix import mask_iou, official_mask_input
from tests.inference.test_image_predictor import smooth_image
from tests.official_reference import build_official, relative_error

torchvision_shim.install()
from sam2.sam2_image_predictor import SAM2ImagePredictor

SIZE = 256  # hidden --image-size: a small model for tests
HW = (120, 200)


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    """A random-weight checkpoint, an image, a mask PNG and prompts for three objects."""
    root = tmp_path_factory.mktemp("segment")
    official = build_official("efficienttam_ti", SIZE, seed=7)
    official.sam_mask_decoder.dynamic_multimask_via_stability = True  # build_sam2's default
    torch.save({"model": official.state_dict()}, root / "w.pt")
    Image.fromarray(smooth_image(HW, seed=7)).save(root / "img.png")
    mask = np.zeros(HW, np.uint8)
    mask[30:90, 50:160] = 255
    Image.fromarray(mask).save(root / "m.png")
    prompts = [
        {"obj_id": 1, "points": [[100, 60]], "labels": [1]},
        {"obj_id": 5, "box": [20, 10, 150, 100], "points": [[60, 50]], "labels": [0]},
        {"obj_id": 9, "mask": "m.png"},
    ]
    (root / "p.json").write_text(json.dumps(prompts))
    return root, official


def run(root, *extra, out="out", prompts="p.json", image="img.png", model="efficienttam_ti"):
    args = [
        "segment",
        "--model",
        model,
        "--checkpoint",
        str(root / "w.pt"),
        "--image",
        str(root / image),
        "--prompts",
        str(root / prompts),
        "--out",
        str(root / out),
        "--image-size",
        str(SIZE),
        *extra,
    ]
    return cli.main(args)


def official_results(root, official):
    """What the official predictor gives for the three objects (multimask)."""
    pred = SAM2ImagePredictor(official)
    pred._bb_feat_sizes = [(SIZE // 16, SIZE // 16)]  # one feature level, not 1024's three
    pred.set_image(np.array(Image.open(root / "img.png")))
    low = official_mask_input(root / "m.png", SIZE)
    kws = {
        1: {"point_coords": np.array([[100.0, 60.0]]), "point_labels": np.array([1])},
        5: {
            "box": np.array([20.0, 10, 150, 100]),
            "point_coords": np.array([[60.0, 50]]),
            "point_labels": np.array([0]),
        },
        9: {"mask_input": low},
    }
    return {
        k: pred.predict(**kw, multimask_output=True, return_logits=True) for k, kw in kws.items()
    }


def test_multimask_outputs_match_official(case):
    root, official = case
    assert run(root, "--multimask", "--save-logits", out="mm") == 0
    out = root / "mm"
    scores = json.loads((out / "scores.json").read_text())
    for obj_id, (logits, ious, _) in official_results(root, official).items():
        np.testing.assert_allclose(scores[str(obj_id)]["scores"], ious, atol=1e-3)
        best = scores[str(obj_id)]["best"]
        assert best == int(np.argmax(ious))
        for stem, want in [(f"{obj_id}", logits[best])] + [
            (f"{obj_id}_{k}", logits[k]) for k in range(3)
        ]:
            png = np.asarray(Image.open(out / f"{stem}.png"))
            assert png.shape == HW and set(np.unique(png)) <= {0, 255}
            assert mask_iou(png > 0, want > 0) >= 0.99
            got = np.load(out / f"{stem}.npy")
            assert got.dtype == np.float32 and relative_error(got, want) <= 1e-3
    assert not [p for p in os.listdir(root) if ".partial" in p]


def test_single_mask_outputs(case):
    root, _ = case
    assert run(root, out="single") == 0
    files = sorted(os.listdir(root / "single"))
    assert files == ["1.png", "5.png", "9.png", "scores.json"]
    scores = json.loads((root / "single" / "scores.json").read_text())
    assert all(len(s["scores"]) == 1 and s["best"] == 0 for s in scores.values())


BAD_PROMPTS = {
    "point_outside": ([{"obj_id": 3, "points": [[250, 10]], "labels": [1]}], "obj_id 3"),
    "box_outside": ([{"obj_id": 4, "box": [10, 10, 50, 130]}], "obj_id 4"),
    "no_prompt": ([{"obj_id": 6}], "obj_id 6"),
    "mask_size": ([{"obj_id": 7, "mask": "small.png"}], "small.png"),
    "frame_given": ([{"obj_id": 8, "frame": 0, "points": [[5, 5]], "labels": [1]}], "obj_id 8"),
}


@pytest.mark.parametrize("name", sorted(BAD_PROMPTS))
def test_bad_prompts(case, name, capsys):
    root, _ = case
    entries, named = BAD_PROMPTS[name]
    Image.fromarray(np.zeros((HW[0], HW[1] + 1), np.uint8)).save(root / "small.png")
    (root / f"{name}.json").write_text(json.dumps(entries))
    _assert_fails(root, capsys, named, prompts=f"{name}.json", out=f"bad_{name}")


def test_bad_files(case, capsys, tmp_path):
    root, _ = case
    (root / "broken.jpg").write_bytes(b"not an image")
    _assert_fails(root, capsys, "efficienttam_xx", model="efficienttam_xx", out="bad_model")
    _assert_fails(root, capsys, "missing.jpg", image="missing.jpg", out="bad_missing")
    _assert_fails(root, capsys, "broken.jpg", image="broken.jpg", out="bad_broken")
    _assert_fails(root, capsys, "--auto", "--auto", out="bad_auto")
    (root / "full").mkdir(exist_ok=True)
    (root / "full" / "x").write_text("keep")
    _assert_fails(root, capsys, "full", out="full")
    assert os.listdir(root / "full") == ["x"]


def test_bad_checkpoint_leaves_no_output(case, capsys, tmp_path):
    root, _ = case
    bad = tmp_path / "w.pt"
    bad.write_bytes(b"garbage")
    args = [
        "segment",
        "--model",
        "efficienttam_ti",
        "--checkpoint",
        str(bad),
        "--image",
        str(root / "img.png"),
        "--prompts",
        str(root / "p.json"),
        "--out",
        str(tmp_path / "out"),
        "--image-size",
        str(SIZE),
    ]
    assert cli.main(args) != 0
    assert "w.pt" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path)) == ["w.pt"]


def _assert_fails(root, capsys, named, *extra, out, **kw):
    assert run(root, *extra, out=out, **kw) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and named in err, err
    if out != "full":
        assert not os.path.exists(root / out)
    assert not [p for p in os.listdir(root) if ".partial" in p]
