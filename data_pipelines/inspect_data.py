"""`etam data inspect`: draws examples (frames with mask overlays) to PNG files.

Each example becomes one PNG: its frames side by side (at most ``max_frames``),
every object in its own palette colour, blended at 50% with a solid outline.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PIL import Image

from data_pipelines.records import SkippedExample, decode_record
from data_pipelines.sources import open_source
from data_pipelines.synthetic import davis_palette

log = logging.getLogger(__name__)


def object_colors(num_objects: int) -> np.ndarray:
    """uint8 ``[O, 3]`` distinct colours (DAVIS palette entries 1..O, cycled)."""
    palette = np.asarray(davis_palette(), np.uint8).reshape(256, 3)
    return palette[1 + np.arange(num_objects) % 255]


def _outline(mask: np.ndarray) -> np.ndarray:
    padded = np.pad(mask, 1)
    interior = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return mask & ~interior


def overlay(frame: np.ndarray, masks: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Draws masks over a frame.

    Args:
        frame: uint8 ``[H, W, 3]``.
        masks: bool ``[O, H, W]``.
        alpha: blend weight of the mask colour.

    Returns:
        uint8 ``[H, W, 3]``.
    """
    out = frame.astype(np.float32)
    for mask, color in zip(masks, object_colors(len(masks)).astype(np.float32)):
        out[mask] = (1 - alpha) * out[mask] + alpha * color
        out[_outline(mask)] = color
    return out.round().astype(np.uint8)


def draw_clip(frames: np.ndarray, masks: np.ndarray, max_frames: int = 8) -> np.ndarray:
    """Frames ``[T, H, W, 3]`` with masks ``[T, O, H, W]`` -> one uint8 strip ``[H, t*W, 3]``."""
    step = max(1, -(-len(frames) // max_frames))
    tiles = [overlay(f, m) for f, m in zip(frames[::step], masks[::step])]
    return np.concatenate(tiles, axis=1)


def inspect_source(source_path: str | Path, out_dir: str | Path, num: int = 4, seed: int = 0,
                   max_frames: int = 8) -> list[Path]:
    """Draws ``num`` examples picked at random (by ``seed``) from a record source; returns the PNGs."""
    source = open_source(source_path)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    order = np.random.default_rng(seed).permutation(len(source))
    written = []
    for index in order:
        if len(written) >= num:
            break
        try:
            example = decode_record(source[int(index)])
        except SkippedExample as e:
            log.warning("inspect: skipped %s (%s)", e.file, e.reason)
            continue
        path = out / f"{example['source']}_{example['id']}.png"
        Image.fromarray(draw_clip(example["frames"], example["masks"], max_frames)).save(path)
        written.append(path)
    return written
