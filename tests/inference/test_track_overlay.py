"""`etam track --overlay`: an overlay PNG per tracked frame with every object's mask, and a video."""

import json
import os

import av
import numpy as np
from PIL import Image

from etam_jax.inference.overlay import load_rgb, overlay
from tests.inference.test_track_command import HW, NUM_FRAMES, case, track  # noqa: F401 (fixture)


def read_video(path):
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def test_overlay_mp4_with_reverse(case, tmp_path):  # noqa: F811
    """--reverse revisits frames: overlays hold the masks of both passes, the video is in order."""
    root, frames_dir, prompts_path, _ = case
    entries = json.loads(open(prompts_path).read())
    entries.append({"frame": 2, "obj_id": 9, "points": [[10, 10]], "labels": [1]})
    prompts = root / "with_late_overlay.json"  # beside the mask files it names
    prompts.write_text(json.dumps(entries))
    out = tmp_path / "out"
    assert track(case, out, "--reverse", "--overlay", prompts=str(prompts)) == 0
    obj_ids = sorted({e["obj_id"] for e in entries})
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
    for t, frame in enumerate(video):  # lossy H.264: each frame is closest to its own PNG
        errs = [np.abs(frame.astype(int) - p).mean() for p in pngs]
        assert int(np.argmin(errs)) == t, errs
