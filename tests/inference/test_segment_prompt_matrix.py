"""`etam segment --save-logits` against the official image predictor over the prompt matrix.

The image-predictor half of issue 12: the CLI with a `.pt` of the official
model's state dict, every tensor perturbed (buffers and embeddings included),
images of two aspect ratios, every prompt kind of `prompt_matrix.KINDS`, single
and multimask output, compared with the official `SAM2ImagePredictor` (as
``build_sam2`` sets it up: ``apply_postprocessing``) given each object alone.
Bars: rel err <= 1e-3, IoU >= 0.99, predicted IoU scores within 1e-3.
"""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from etam_jax.cli import main as etam
from tests.inference import torchvision_shim
from tests.inference.prompt_matrix import assert_logits_match, official_mask_input, write_prompts
from tests.inference.test_image_predictor import smooth_image
from tests.official_reference import build_official

torchvision_shim.install()
from sam2.sam2_image_predictor import SAM2ImagePredictor  # noqa: E402


def official_outputs(pred, root, entries, size, multimask):
    """{obj_id: (logits [M, H, W], ious [M])} of the official predictor, one object at a time."""
    out = {}
    for e in entries:
        kw = {}
        if "points" in e:
            kw["point_coords"] = np.array(e["points"], np.float32)
            kw["point_labels"] = np.array(e["labels"])
        if "box" in e:
            kw["box"] = np.array(e["box"], np.float32)
        if "mask" in e:
            kw["mask_input"] = official_mask_input(root / e["mask"], size)
        logits, ious, _ = pred.predict(**kw, multimask_output=multimask, return_logits=True)
        out[e["obj_id"]] = (logits, ious)
    return out


@pytest.mark.parametrize(
    "name,image_size,hw",
    [
        ("efficienttam_ti", 256, (480, 854)),
        ("efficienttam_ti", 256, (640, 480)),
        pytest.param("efficienttam_ti_512x512", 512, (480, 854), marks=pytest.mark.slow),
    ],
)
def test_cli_matches_official(tmp_path, name, image_size, hw):
    Image.fromarray(smooth_image(hw, seed=3)).save(tmp_path / "img.png")
    prompts_path = write_prompts(tmp_path, hw, None)
    entries = json.loads(prompts_path.read_text())
    official = build_official(name, image_size, seed=6, scheme="perturb")
    official.sam_mask_decoder.dynamic_multimask_via_stability = True  # build_sam2's default
    torch.save({"model": official.state_dict()}, tmp_path / "w.pt")
    pred = SAM2ImagePredictor(official)
    pred._bb_feat_sizes = [(image_size // 16, image_size // 16)]  # one feature level
    pred.set_image(np.array(Image.open(tmp_path / "img.png")))
    for multimask in (False, True):
        out = tmp_path / f"out_{multimask}"
        argv = [
            "segment",
            "--model",
            name,
            "--checkpoint",
            str(tmp_path / "w.pt"),
            "--image",
            str(tmp_path / "img.png"),
            "--prompts",
            str(prompts_path),
            "--out",
            str(out),
            "--save-logits",
            "--image-size",
            str(image_size),
        ]
        assert etam(argv + (["--multimask"] if multimask else [])) == 0
        want = official_outputs(pred, tmp_path, entries, image_size, multimask)
        scores = json.loads((out / "scores.json").read_text())
        got, ref = {}, {}
        for obj_id, (logits, ious) in want.items():
            np.testing.assert_allclose(scores[str(obj_id)]["scores"], ious, atol=1e-3)
            stems = {f"{obj_id}": logits[int(np.argmax(ious))]}
            stems.update({f"{obj_id}_{k}": x for k, x in enumerate(logits) if multimask})
            for stem, x in stems.items():
                ref[stem], got[stem] = x, np.load(out / f"{stem}.npy")
        assert_logits_match(got, ref, hw, label=f"{name} multimask={multimask}")
