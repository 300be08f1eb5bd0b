"""Deterministic host batches for train-step tests: noisy frames with a moving blob per object."""

from __future__ import annotations

import numpy as np


def blob_batch(
    batch: int, frames: int, objects: int, size: int, seed: int = 0
) -> dict[str, np.ndarray]:
    """A global batch in the train step's layout (see `data_pipelines.examples`).

    Object ``o`` of clip ``b`` is an axis-aligned rectangle that shifts by a few
    pixels per frame; the frames are noise with the rectangles brightened.
    """
    rng = np.random.default_rng(seed)
    frames_arr = rng.integers(0, 120, (batch, frames, size, size, 3), dtype=np.uint8)
    masks = np.zeros((batch, frames, objects, size, size), bool)
    for b in range(batch):
        for o in range(objects):
            y, x = rng.integers(0, size // 2, 2)
            h, w = rng.integers(size // 8, size // 3, 2)
            for t in range(frames):
                masks[b, t, o, y + 2 * t : y + 2 * t + h, x + t : x + t + w] = True
    frames_arr[masks.any(2)] += 100
    return {
        "frames": frames_arr,
        "masks": masks,
        "obj_valid": np.ones((batch, objects), bool),
        "frame_valid": np.ones((batch, frames), bool),
    }
