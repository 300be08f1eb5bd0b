"""One record -> one fixed-shape training example; bad records replaced, counted, logged.

An example (before batching) is a dict of numpy arrays:

- ``frames`` uint8 ``[T, S, S, 3]``
- ``masks`` bool ``[T, O, S, S]`` (all False for padded objects)
- ``obj_valid`` bool ``[O]``: a sampled object with pixels on the first frame
- ``frame_valid`` bool ``[T]``
- ``object_ids`` int32 ``[O]`` (-1 for padding), ``frame_indices`` int32 ``[T]``
- ``num_skipped`` int32 ``[]`` and ``skipped_files`` bytes ``[]``: bad records
  drawn for this slot before a good one (consumed by `skip_limit`).

With ``pack_masks``, ``masks`` travels as ``masks_packed`` uint8
``[T, O, S, S / 8]`` (``np.packbits`` on the last axis): 8x less to batch,
ship between processes and copy to the device; `global_batch.to_global_batch`
unpacks it on the device, so a train step still gets bool ``masks``.

A record that raises `SkippedExample` is replaced by another record of the
same shard drawn with the example's rng, as SAM 2's ``VOSDataset._get_datapoint``
retries with a random index: the slot is filled, nothing else in the batch moves.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pycocotools.mask as mask_utils

from data_pipelines.clip_sampling import SamplingSpec, sample_clip
from data_pipelines.records import Record, SkippedExample, decode_record
from data_pipelines.transforms import AugmentSpec, augment_clip
from etam_jax.errors import EtamError

log = logging.getLogger(__name__)

MAX_REPLACEMENTS = 100  # as VOSDataset's MAX_RETRIES
MODEL_KEYS = ("frames", "masks", "obj_valid", "frame_valid")  # what a train step takes


def mask_boxes(record: Record, frame_idx: np.ndarray, obj_idx: np.ndarray) -> np.ndarray:
    """COCO boxes ``(x, y, w, h)`` of the selected masks from their RLEs: float ``[t, o, 4]``.

    Zeros where an object is not annotated. Lets `augment_clip` warp only the
    part of the output an object can reach.
    """
    sel = np.ix_(frame_idx, obj_idx)
    counts, valid = record["rle_counts"][sel], record["valid"][sel]
    boxes = np.zeros(counts.shape + (4,))
    size = [record["height"], record["width"]]
    rles = [
        {"size": size, "counts": c.encode() if isinstance(c, str) else c} for c in counts[valid]
    ]
    if rles:
        boxes[valid] = mask_utils.toBbox(rles)
    return boxes


def make_example(
    record: Record, sampling: SamplingSpec, augment: AugmentSpec, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Sample, decode, augment and pad one record.

    Args:
        record: a record (`data_pipelines.records`).
        sampling: frames and objects per example (T, O).
        augment: augmentation settings.
        rng: the example's generator.

    Returns:
        the example dict (module docstring), without the skip fields.

    Raises:
        SkippedExample: the record is bad, or no object keeps a pixel on the
            first frame after augmentation.
    """
    frame_idx, obj_idx = sample_clip(record, sampling, rng)
    decoded = decode_record(record, frame_idx, obj_idx)
    o, max_o = len(obj_idx), sampling.max_objects
    frames, masks = augment_clip(
        decoded["frames"],
        decoded["masks"],
        augment,
        rng,
        max_o,
        mask_boxes(record, frame_idx, obj_idx),
    )
    obj_valid = np.zeros(max_o, bool)
    obj_valid[:o] = masks[0, :o].reshape(o, -1).any(axis=1)
    if not obj_valid.any():
        raise SkippedExample(
            "no object keeps a pixel on the first frame after augmentation", record.get("file", "?")
        )
    object_ids = np.full(max_o, -1, np.int32)
    object_ids[:o] = decoded["object_ids"]
    return {
        "frames": frames,
        "masks": masks,
        "obj_valid": obj_valid,
        "frame_valid": np.ones(sampling.num_frames, bool),
        "object_ids": object_ids,
        "frame_indices": decoded["frame_indices"].astype(np.int32),
    }


class ExampleMaker:
    """``random_map`` transform: record -> example, replacing bad records.

    Picklable (module-level class holding plain data), as Grain's worker
    processes need.

    Args:
        records: the shard's records (random access), to draw replacements from.
        sampling: frames and objects per example.
        augment: augmentation settings.
        make: ``make(record, sampling, augment, rng) -> dict``; `make_example`
            (the benchmark swaps in a decode-only function).
        pack_masks: ship ``masks`` bit-packed as ``masks_packed`` (module docstring).
    """

    def __init__(
        self,
        records: Sequence[Record],
        sampling: SamplingSpec,
        augment: AugmentSpec,
        make: Callable[..., dict[str, Any]] = make_example,
        pack_masks: bool = False,
    ):
        self.records = records
        self.sampling = sampling
        self.augment = augment
        self.make = make
        self.pack_masks = pack_masks

    def __call__(self, record: Record, rng: np.random.Generator) -> dict[str, Any]:
        skipped: list[str] = []
        for _ in range(MAX_REPLACEMENTS):
            try:
                example = self.make(record, self.sampling, self.augment, rng)
            except SkippedExample as e:
                log.warning("skipping example from %s: %s", e.file, e.reason)
                skipped.append(e.file)
                record = self.records[int(rng.integers(len(self.records)))]
                continue
            if self.pack_masks and "masks" in example:
                example["masks_packed"] = np.packbits(example.pop("masks"), axis=-1)
            example["num_skipped"] = np.int32(len(skipped))
            example["skipped_files"] = np.bytes_("; ".join(skipped).encode())
            return example
        raise EtamError(
            f"{MAX_REPLACEMENTS} bad records in a row (last: {skipped[-1]}); "
            "is this data source readable?"
        )
