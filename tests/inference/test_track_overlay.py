"""`etam track --overlay`: a PNG per tracked frame with every object's mask, and a video."""

import json
import os

import av
import numpy as np
import pytest
from PIL import Image

from etam_jax.cli import main as etam
from etam_jax.convert.checkpoint_io import save_orbax
from etam_jax.inference.demo_video import write_demo_video
from etam_jax.inference.overlay import load_rgb, overlay
from tests.random_model import random_model

# Smaller than test_track_command's model: random weights need no eager init.
MODEL, SIZE, NUM_FRAMES, HW = "efficienttam_ti_512x512", 64, 4, (72, 96)


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    root = tmp_path_factory.mktemp("track_overlay")
    frames_dir, prompts = write_demo_video(str(root), NUM_FRAMES, size=HW, seed=5)
    with open(prompts) as f:
        entries = json.load(f)
    entries.append({"frame": 2, "obj_id": 9, "points": [[10, 10]], "labels": [1]})
    with open(prompts, "w") as f:  # a late object, so --reverse revisits tracked frames
        json.dump(entries, f)
    save_orbax(random_model(MODEL, SIZE, apply_postprocessing=True), MODEL, root / "ckpt")
    return frames_dir, prompts, str(root / "ckpt"), sorted({e["obj_id"] for e in entries})


def read_video(path):
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def test_overlay_mp4_with_reverse(case, tmp_path):
    """--reverse revisits frames: overlays hold the masks of both passes, the video is in order."""
    frames_dir, prompts, ckpt, obj_ids = case
    out = tmp_path / "out"
    argv = ["track", "--model", MODEL, "--checkpoint", ckpt, "--frames", frames_dir,
            "--prompts", prompts, "--out", str(out), "--image-size", str(SIZE),
            "--reverse", "--overlay"]  # fmt: skip
    assert etam(argv) == 0
    stems = [f"{t:05d}" for t in range(NUM_FRAMES)]
    assert sorted(os.listdir(out / "overlay")) == [s + ".png" for s in stems]
    video = read_video(out / "overlay.mp4")
    assert len(video) == NUM_FRAMES and all(v.shape == HW + (3,) for v in video)
    pngs = []
    for s in stems:
        masks = {o: np.asarray(Image.open(out / str(o) / f"{s}.png")) > 0 for o in obj_ids}
        want = overlay(load_rgb(os.path.join(frames_dir, f"{s}.jpg")), masks)
        pngs.append(np.asarray(Image.open(out / "overlay" / f"{s}.png")))
        np.testing.assert_array_equal(pngs[-1], want)
    for t, frame in enumerate(video):  # lossy H.264: each frame is (about) closest to its own PNG
        errs = [np.abs(frame.astype(int) - p).mean() for p in pngs]
        assert errs[t] < 4 and errs[t] <= min(errs) + 0.5, (t, errs)  # (near-equal frames tie)
