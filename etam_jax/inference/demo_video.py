"""A generated video with prompts, for demos, tests and `etam bench track`.

Frames come from `data_pipelines.synthetic_scene.Scene` (textured shapes
moving over a textured background), rendered and written one at a time so a
long video never sits in memory. The prompts exercise every kind: object 1
by a click, object 2 by a box, object 3 by a mask PNG, on the frame where
each is first clearly visible.
"""

from __future__ import annotations

import json
import os

import numpy as np
from PIL import Image

from data_pipelines.synthetic_scene import Scene

MIN_AREA = 64  # pixels: smaller objects are not prompted


def write_demo_video(
    out_dir: str,
    num_frames: int,
    size: tuple[int, int] = (240, 320),
    num_objects: int = 3,
    seed: int = 0,
) -> tuple[str, str]:
    """Writes ``out_dir/frames/%05d.jpg`` and ``out_dir/prompts.json``.

    Args:
        out_dir: folder to write into (created).
        num_frames: video length.
        size: (H, W) of the frames.
        num_objects: objects in the scene; those visible enough get a prompt.
        seed: scene seed.

    Returns:
        (frames folder, prompts file).
    """
    frames_dir = os.path.join(out_dir, "frames")
    os.makedirs(frames_dir, exist_ok=True)
    scene = Scene(seed, size[0], size[1], num_objects, num_frames)
    prompts: list[dict] = []
    for t in range(num_frames):
        frame, masks = scene.render(t)
        Image.fromarray(frame).save(os.path.join(frames_dir, f"{t:05d}.jpg"), quality=90)
        for k, mask in enumerate(masks):
            prompted = {p["obj_id"] for p in prompts}
            if k + 1 not in prompted and mask.sum() >= MIN_AREA:
                prompts.append(_prompt(out_dir, t, k + 1, mask))
    path = os.path.join(out_dir, "prompts.json")
    with open(path, "w") as f:
        json.dump(prompts, f, indent=1)
    return frames_dir, path


def _prompt(out_dir: str, frame: int, obj_id: int, mask: np.ndarray) -> dict:
    """A click, a box or a mask prompt for object `obj_id`, in turn."""
    ys, xs = np.nonzero(mask)
    entry: dict = {"frame": frame, "obj_id": obj_id}
    kind = (obj_id - 1) % 3
    if kind == 0:  # the object pixel closest to its centroid
        k = int(np.argmin((xs - xs.mean()) ** 2 + (ys - ys.mean()) ** 2))
        entry.update(points=[[float(xs[k]) + 0.5, float(ys[k]) + 0.5]], labels=[1])
    elif kind == 1:
        entry["box"] = [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]
    else:
        name = f"mask_{obj_id}.png"
        Image.fromarray(mask.astype(np.uint8) * 255).save(os.path.join(out_dir, name))
        entry["mask"] = name
    return entry
