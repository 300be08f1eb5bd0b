"""`etam eval --vis N`: overlays of the N worst videos (lowest J&F).

For each such video, ``OUT/vis/<video>/<frame>.png`` on every annotated frame:
the ground truth (left) and the prediction (right) blended over the frame in
the fixed per-object colours of `etam_jax.inference.overlay`, and the same
frames as ``OUT/vis/<video>.mp4``. Predictions are read back from the masks
`outputs.MaskWriter` wrote, so nothing is kept in memory during evaluation.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from data_pipelines.vos_reader import VOSVideo
from etam_jax.evaluation.outputs import read_masks
from etam_jax.inference.overlay import VideoWriter, load_rgb, overlay

VIS = "vis"
FPS = 6.0  # the SA-V annotation rate; DAVIS clips are short enough to watch at it too


def worst_videos(rows: list[dict], count: int) -> list[str]:
    """Names of the `count` videos with the lowest J&F (ties: name order)."""
    ranked = sorted(rows, key=lambda r: (r["J&F"], r["video"]))
    return [r["video"] for r in ranked[: max(count, 0)]]


def side_by_side(video: VOSVideo, out_dir: str | Path, frame: int) -> np.ndarray:
    """[H, 2W, 3] uint8: ground truth overlay | predicted overlay of one annotated frame."""
    rgb = load_rgb(str(video.frame_paths[frame]))
    gt = {o: video.mask(o, frame) for o in video.object_ids if frame in video.mask_paths[o]}
    pred = read_masks(out_dir, video, frame)
    return np.concatenate([overlay(rgb, gt), overlay(rgb, pred)], axis=1)


def write_vis(
    out_dir: str | Path, videos: list[VOSVideo], rows: list[dict], count: int
) -> list[str]:
    """Writes the overlays of the `count` worst videos under ``out_dir/vis``; returns their names."""
    by_name = {v.name: v for v in videos}
    names = worst_videos(rows, count)
    for name in names:
        video = by_name[name]
        folder = Path(out_dir) / VIS / name
        folder.mkdir(parents=True, exist_ok=True)
        with VideoWriter(str(Path(out_dir) / VIS / f"{name}.mp4"), FPS) as writer:
            for t in video.annotated_frames:
                image = side_by_side(video, out_dir, t)
                Image.fromarray(image).save(folder / f"{video.frame_paths[t].stem}.png")
                writer.write(image)
    return names
