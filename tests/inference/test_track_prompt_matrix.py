"""`etam track --save-logits` against the official video predictor over the whole prompt matrix.

As a user runs it: the CLI, a `.pt` of the official model's state dict with
every tensor perturbed (the "perturb" scheme of `tests/official_reference`:
buffers, embeddings, tokens and encodings included), non-square frames of two
aspect ratios, and every prompt kind (`prompt_matrix.KINDS`) on frame 0 and on
a later frame, plus a correction click. Each object is compared with the
official (PyPI 1.0) predictor run on that object alone (DESIGN.md
`etam track`). Bars (issue 12): rel err <= 1e-3 on every object and frame,
IoU >= 0.99. Small model sizes: the prompt semantics do not depend on 1024
(the full-size video parity is `test_video_predictor.py`); the 512x512 model
runs at its own size.
"""

import numpy as np
import pytest
import torch

from etam_jax.bench.official_predictor import build_official_predictor, run_official_per_object
from etam_jax.cli import main as etam
from etam_jax.inference.demo_video import write_demo_video
from etam_jax.inference.prompts_io import load_prompts
from tests.inference.prompt_matrix import (
    KINDS,
    assert_logits_match,
    by_object_frame,
    write_prompts,
)

NUM_FRAMES, LATER, CORRECTION = 5, 2, (3, KINDS.index("click3"))


def run_cli(root, name, image_size, frames_dir, prompts_path, reverse):
    """Our logits through `etam track`: {obj_id: {frame: [H, W]}}."""
    out = root / "out"
    argv = [
        "track",
        "--model",
        name,
        "--checkpoint",
        str(root / "w.pt"),
        "--frames",
        frames_dir,
        "--prompts",
        str(prompts_path),
        "--out",
        str(out),
        "--save-logits",
    ]
    argv += ["--image-size", str(image_size)] + (["--reverse"] if reverse else [])
    assert etam(argv) == 0
    return {int(d.name): {int(f.stem): np.load(f) for f in d.glob("*.npy")} for d in out.iterdir()}


@pytest.mark.parametrize(
    "name,image_size,hw,reverse",
    [
        ("efficienttam_ti", 256, (480, 854), False),
        ("efficienttam_ti", 256, (640, 480), True),
        ("efficienttam_ti_1", 256, (480, 854), False),
        pytest.param("efficienttam_ti_512x512", 512, (480, 854), False, marks=pytest.mark.slow),
    ],
)
def test_cli_matches_official(tmp_path, name, image_size, hw, reverse):
    frames_dir, _ = write_demo_video(str(tmp_path), NUM_FRAMES, size=hw, seed=11)
    prompts_path = write_prompts(tmp_path, hw, (0, LATER), CORRECTION)
    official = build_official_predictor(name, image_size, seed=4, scheme="perturb")
    torch.save({"model": official.state_dict()}, tmp_path / "w.pt")
    got = run_cli(tmp_path, name, image_size, frames_dir, prompts_path, reverse)
    prompts = load_prompts(str(prompts_path), hw, NUM_FRAMES)
    want = run_official_per_object(official, frames_dir, prompts, reverse)
    assert_logits_match(by_object_frame(got), by_object_frame(want), hw, label=name)
