"""Choosing which frames and objects of a record make one training example.

Follows SAM 2's ``RandomUniformSampler`` (``training/dataset/vos_sampler.py``):
a clip is ``num_frames`` consecutive *annotated* frames (SA-V: 6 fps) starting
at a uniformly drawn frame whose first frame shows at least one object, and up
to ``max_objects`` of the objects visible on that first frame, in random
order. SA-1B images are 1-frame clips with up to 64 objects. Works on the cheap
record fields only (RLE areas, no pixels decoded), so `decode_record` then
decodes just the selection.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from data_pipelines.records import Record, SkippedExample, num_frames, require_frames, rle_area


@dataclasses.dataclass(frozen=True)
class SamplingSpec:
    """What one example holds.

    Attributes:
        num_frames: clip length T in annotated frames (1 for images).
        max_objects: at most this many objects O per example.
        reverse_time_prob: probability of playing the clip backwards (SAM 2's
            ``reverse_time_prob``; 0 in its configs).
    """

    num_frames: int = 8
    max_objects: int = 3
    reverse_time_prob: float = 0.0


def visible_objects(record: Record, t: int) -> np.ndarray:
    """Indices of the objects with at least one pixel on annotated frame ``t``.

    Args:
        record: a record (`data_pipelines.records`).
        t: index into the record's frames.

    Returns:
        int64 ``[k]`` object indices (into ``record["object_ids"]``), ascending.
    """
    h, w = record["height"], record["width"]
    counts, valid = record["rle_counts"][t], record["valid"][t]
    try:
        return np.array(
            [o for o in np.flatnonzero(valid) if rle_area(counts[o], h, w) > 0], np.int64
        )
    except (ValueError, TypeError) as e:
        raise SkippedExample(f"bad RLE on frame {t} ({e})", record.get("file", "?")) from e


def sample_clip(
    record: Record, spec: SamplingSpec, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Draws the frames and objects of one example.

    As vos_sampler.RandomUniformSampler.sample, which redraws the start until
    the first frame shows an object: visiting the starts in a random order and
    taking the first good one draws from the same (uniform over good starts)
    distribution and always terminates.

    Args:
        record: a record (`data_pipelines.records`).
        spec: clip length and object count.
        rng: the example's generator (Grain's per-element rng).

    Returns:
        ``frame_idx`` int64 ``[T]`` (consecutive, possibly reversed) and
        ``obj_idx`` int64 ``[o]`` with ``1 <= o <= max_objects``.

    Raises:
        SkippedExample: a reader error, fewer annotated frames than T, or no
            start whose first frame shows an object.
    """
    if "error" in record:  # the reader could not read the files
        raise SkippedExample(record["error"], record.get("file", "?"))
    require_frames(record, spec.num_frames)
    num_starts = num_frames(record) - spec.num_frames + 1
    for start in rng.permutation(num_starts):
        frame_idx = np.arange(start, start + spec.num_frames)
        if rng.random() < spec.reverse_time_prob:
            frame_idx = frame_idx[::-1].copy()
        visible = visible_objects(record, int(frame_idx[0]))
        if visible.size:
            count = min(visible.size, spec.max_objects)
            return frame_idx, rng.choice(visible, size=count, replace=False)
    raise SkippedExample(
        f"no clip of {spec.num_frames} frames starts with a visible object", record.get("file", "?")
    )
