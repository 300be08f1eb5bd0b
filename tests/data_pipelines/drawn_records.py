"""Hand-drawn records for the pipeline tests: coloured discs that move over a grey field."""

from __future__ import annotations

import numpy as np

from data_pipelines.records import Record, encode_jpeg, encode_rle, make_record

COLOURS = np.array([[220, 30, 30], [30, 200, 40], [40, 60, 230], [230, 220, 30]], np.uint8)
BACKGROUND = 128


def disc(height: int, width: int, cx: float, cy: float, r: float) -> np.ndarray:
    """bool ``[H, W]``: pixel centres within ``r`` of ``(cx, cy)``."""
    ys, xs = np.mgrid[0:height, 0:width] + 0.5
    return (xs - cx) ** 2 + (ys - cy) ** 2 <= r * r


def drawn_clip(
    seed: int, num_frames: int = 1, num_objects: int = 2, height: int = 96, width: int = 128
) -> tuple[np.ndarray, np.ndarray]:
    """Frames uint8 ``[T, H, W, 3]`` and masks bool ``[T, K, H, W]`` of moving discs."""
    rng = np.random.default_rng(seed)
    r = rng.uniform(0.12, 0.18, num_objects) * min(height, width)
    start = rng.uniform(0.3, 0.7, (num_objects, 2)) * [width, height]
    step = rng.uniform(-2, 2, (num_objects, 2))
    frames = np.full((num_frames, height, width, 3), BACKGROUND, np.uint8)
    masks = np.zeros((num_frames, num_objects, height, width), bool)
    for t in range(num_frames):
        for k in range(num_objects):
            m = disc(height, width, *(start[k] + t * step[k]), r[k])
            masks[t, :k] &= ~m  # later objects occlude earlier ones
            masks[t, k] = m
            frames[t][m] = COLOURS[k % len(COLOURS)]
    return frames, masks


def record_from_arrays(
    frames: np.ndarray, masks: np.ndarray, name: str, source: str = "sav", first_id: int = 1
) -> Record:
    """A record holding these frames (JPEG) and masks (RLE), every object annotated on every frame."""
    t, k = masks.shape[:2]
    counts = np.empty((t, k), dtype=object)
    for i in range(t):
        for j in range(k):
            counts[i, j] = encode_rle(masks[i, j])
    return make_record(
        id=name,
        source=source,
        file=f"/data/{name}",
        frames=[encode_jpeg(f) for f in frames],
        frame_indices=np.arange(t) * 4,
        height=frames.shape[1],
        width=frames.shape[2],
        object_ids=np.arange(k) + first_id,
        rle_counts=counts,
        valid=np.ones((t, k), bool),
    )


def drawn_records(
    n: int,
    num_frames: int,
    num_objects: int = 2,
    source: str = "sav",
    height: int = 96,
    width: int = 128,
    seed: int = 0,
) -> list[Record]:
    """``n`` records of drawn clips, named ``<source>_<i>``; record i's object ids are ``100 i + k``."""
    return [
        record_from_arrays(
            *drawn_clip(seed * 1000 + i, num_frames, num_objects, height, width),
            f"{source}_{i:03d}",
            source,
            first_id=100 * i,
        )
        for i in range(n)
    ]


def truncated(record: Record) -> Record:
    """The same record with every JPEG cut in half (a corrupt file)."""
    bad = dict(record)
    frames = np.empty(len(record["frames"]), dtype=object)
    frames[:] = [f[: len(f) // 2] for f in record["frames"]]
    bad["frames"] = frames
    return bad
