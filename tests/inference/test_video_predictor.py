"""End-to-end video parity: our batched predictor vs the official one run per object alone.

Every weight randomised (tests/official_reference.randomize_); three objects
prompted with clicks, a box and a mask, one starting on a later frame and one
with a second (correction) click on a later frame; ours tracks all three in
one batch, each is compared with the official `SAM2VideoPredictor` run on
that object alone. At 256 px the clip is tracked forward and back; at 1024 px
(where only the sizes differ) forward over the first frames, past the
correction click; the pooled variants at 1024 are checked module by module
(tests/models/test_memory_attention.py), end to end at 256
(tests/inference/test_track_prompt_matrix.py, tests/models/test_tracker.py).
Tolerance: max|ours - ref| / max(1, max|ref|) <= 1e-3 per object and frame,
mask IoU >= 0.99.
"""

import numpy as np
import pytest
from PIL import Image

from etam_jax.bench.official_predictor import build_official_predictor, run_official_per_object
from etam_jax.convert.naming import load_torch_arrays
from etam_jax.inference.demo_video import write_demo_video
from etam_jax.inference.prompts_io import load_prompts
from etam_jax.inference.video_predictor import VideoPredictor
from etam_jax.models.build import empty_model
from tests.inference.prompt_matrix import assert_logits_match, by_object_frame
from tests.official_reference import state_dict_numpy

NUM_FRAMES = 8
HW = (120, 160)


def write_case(tmp_path, num_frames=NUM_FRAMES):
    """Frames plus prompts: obj 1 clicks (frame 0, corrected on 4), obj 2 box (from frame 2), obj 3 mask."""
    frames_dir, _ = write_demo_video(str(tmp_path), num_frames, size=HW, seed=3)
    mask = np.zeros(HW, np.uint8)
    mask[30:70, 40:100] = 255
    mask[50:60, 60:70] = 0
    Image.fromarray(mask).save(tmp_path / "m3.png")
    prompts = [
        {"frame": 0, "obj_id": 1, "points": [[40.5, 30.2], [100, 80]], "labels": [1, 0]},
        {"frame": 4, "obj_id": 1, "points": [[70, 60]], "labels": [1]},
        {"frame": 2, "obj_id": 2, "box": [20, 15, 90.5, 100], "points": [[50, 50]], "labels": [1]},
        {"frame": 0, "obj_id": 3, "mask": "m3.png"},
    ]
    path = tmp_path / "case.json"
    import json

    path.write_text(json.dumps(prompts))
    return frames_dir, load_prompts(str(path), HW, num_frames)


def run_ours(official, name, image_size, frames_dir, prompts, reverse):
    model = empty_model(name, image_size=image_size, apply_postprocessing=True)  # all loaded below
    load_torch_arrays(model, state_dict_numpy(official))
    predictor = VideoPredictor(model)
    predictor.init_state(frames_dir)
    for p in prompts:
        predictor.add_prompt(p.frame, p.obj_id, p.points, p.labels, p.box, p.mask)
    got: dict[int, dict[int, np.ndarray]] = {}
    for rev in (False, True) if reverse else (False,):
        for t, logits in predictor.propagate(reverse=rev):
            for obj_id, x in logits.items():
                got.setdefault(obj_id, {})[t] = x
    return got


@pytest.mark.parametrize(
    "name,image_size,num_frames,reverse",
    [
        ("efficienttam_ti", 256, NUM_FRAMES, True),
        pytest.param("efficienttam_ti", 1024, 5, False, marks=pytest.mark.slow),
    ],
)
def test_parity(tmp_path, name, image_size, num_frames, reverse):
    frames_dir, prompts = write_case(tmp_path, num_frames)
    official = build_official_predictor(name, image_size, seed=1)
    want = run_official_per_object(official, frames_dir, prompts, reverse)
    got = run_ours(official, name, image_size, frames_dir, prompts, reverse)
    assert_logits_match(by_object_frame(got), by_object_frame(want), HW, label=name)
