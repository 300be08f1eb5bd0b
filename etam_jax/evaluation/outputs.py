"""What `etam eval` writes: predicted masks in the official layouts and the score files.

Masks (``OUT/masks``), as sam2 ``tools/vos_inference.py`` writes them, so the
official toolkits can score them too, on every annotated frame:

- DAVIS: ``masks/<video>/<frame>.png``, one palette PNG (pixel = object id;
  the ground truth's palette), objects combined as ``put_per_obj_mask`` (the
  smaller id on top; the non-overlap constraint leaves no overlap anyway).
- SA-V: ``masks/<video>/<obj:03d>/<frame>.png``, one binary PNG per object.

Scores: ``summary.json`` (``{"J&F", "J", "F", "videos", "objects"}``),
``per_video.csv`` (``video,objects,J&F,J,F``) and ``per_object.csv``
(``video,object,frames,J&F,J,F``).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from PIL import Image

from data_pipelines.vos_reader import VOSVideo
from etam_jax.evaluation.protocol import ObjectScore
from etam_jax.inference.frames import read_size

MASKS = "masks"


def _gt_palette(video: VOSVideo) -> list[int] | None:
    first = min(video.annotated_frames)
    path = next(paths[first] for paths in video.mask_paths.values() if first in paths)
    with Image.open(path) as img:
        return img.getpalette()


class MaskWriter:
    """Writes one video's predicted masks under ``out_dir/masks/<video>``."""

    def __init__(self, out_dir: str | Path, video: VOSVideo):
        self.video = video
        self.folder = Path(out_dir) / MASKS / video.name
        self.folder.mkdir(parents=True, exist_ok=True)
        self.palette = _gt_palette(video) if video.indexed else None
        self.frames = set(video.annotated_frames)
        self.size = read_size(str(video.frame_paths[0]))  # (H, W)

    def write(self, frame: int, masks: Mapping[int, np.ndarray]) -> None:
        """Writes frame ``frame``'s masks (``{obj_id: bool [H, W]}``, missing = empty)
        when the frame is annotated."""
        if frame not in self.frames:
            return
        stem = self.video.frame_paths[frame].stem
        if self.video.indexed:
            index = np.zeros(self.size, np.uint8)
            for o in sorted(masks, reverse=True):  # as put_per_obj_mask: smaller ids on top
                index[masks[o]] = o
            img = Image.fromarray(index, mode="P")
            if self.palette:
                img.putpalette(self.palette)
            img.save(self.folder / f"{stem}.png")
            return
        for o in self.video.object_ids:
            obj_dir = self.folder / f"{o:03d}"
            obj_dir.mkdir(exist_ok=True)
            mask = masks.get(o, np.zeros(self.size, bool))
            Image.fromarray(mask.astype(np.uint8) * 255).save(obj_dir / f"{stem}.png")


def read_masks(out_dir: str | Path, video: VOSVideo, frame: int) -> dict[int, np.ndarray]:
    """``{obj_id: bool [H, W]}`` written by `MaskWriter` for one annotated frame."""
    folder, stem = Path(out_dir) / MASKS / video.name, video.frame_paths[frame].stem
    if video.indexed:
        index = np.asarray(Image.open(folder / f"{stem}.png"))
        return {o: index == o for o in video.object_ids}
    return {
        o: np.asarray(Image.open(folder / f"{o:03d}" / f"{stem}.png")) > 0 for o in video.object_ids
    }


def _write_csv(path: Path, header: list[str], rows: list[list]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


def write_scores(
    out_dir: str | Path, summary: dict, rows: list[dict], scores: list[ObjectScore]
) -> None:
    """Writes ``summary.json``, ``per_video.csv`` and ``per_object.csv`` into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    _write_csv(
        out / "per_video.csv",
        ["video", "objects", "J&F", "J", "F"],
        [[r["video"], r["objects"], r["J&F"], r["J"], r["F"]] for r in rows],
    )
    _write_csv(
        out / "per_object.csv",
        ["video", "object", "frames", "J&F", "J", "F"],
        [[s.video, s.obj_id, s.frames, s.jf, s.j, s.f] for s in scores],
    )
