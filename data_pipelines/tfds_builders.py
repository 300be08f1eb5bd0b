"""TFDS builders that store records (`data_pipelines.records`) as ArrayRecord, without TensorFlow.

Why not TFDS's own ``segment_anything`` builder for SA-1B: it encodes images
with ``tfds.features.Image`` (needs TensorFlow to encode), generates with
Apache Beam (not installed), and reads a links file to *download* the tars
rather than our local shards. Ours stores every feature as a
``tfds.features.Tensor`` (bytes as ``np.object_``), which TFDS 4.9 writes and
reads with NumPy only (see ../shared/DESIGN.md).

Stored layout of one example (``[T, O]`` arrays flattened, as TFDS Tensors
with more than one unknown dimension are not needed): ``id``, ``source``,
``file`` (bytes), ``frames`` ``[T]`` JPEG bytes, ``frame_indices`` ``[T]``,
``height``, ``width``, ``object_ids`` ``[O]``, ``rle_counts`` ``[T*O]`` bytes,
``valid`` ``[T*O]``. `to_stored` / `from_stored` convert records both ways.

Every example is checked while preparing (`records.validate_record`: frames
decoded, RLE areas, optionally every mask), in Grain worker processes when
``workers`` > 0; examples that raise `SkippedExample` are left out and listed
in ``skipped`` on the builder.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Iterator

import grain
import numpy as np
import tensorflow_datasets as tfds
from absl import flags
from tqdm import tqdm

from data_pipelines.records import Record, SkippedExample, validate_record

log = logging.getLogger(__name__)
DATASET_VERSION = "1.0.0"


def _features() -> tfds.features.FeaturesDict:
    def tensor(shape: tuple, dtype: Any, doc: str) -> tfds.features.Tensor:
        return tfds.features.Tensor(shape=shape, dtype=dtype, doc=doc)

    return tfds.features.FeaturesDict(
        {
            "id": tensor((), np.object_, "example id, e.g. sa_1 / sav_000001"),
            "source": tensor((), np.object_, "sa1b or sav"),
            "file": tensor((), np.object_, "original file, for logs"),
            "frames": tensor((None,), np.object_, "JPEG bytes per annotated frame"),
            "frame_indices": tensor((None,), np.int32, "frame number in the 24 fps video"),
            "height": tensor((), np.int32, "frame height"),
            "width": tensor((), np.int32, "frame width"),
            "object_ids": tensor((None,), np.int32, "object / masklet ids"),
            "rle_counts": tensor((None,), np.object_, "COCO RLE counts, [T, O] flattened"),
            "valid": tensor((None,), np.bool_, "object annotated on frame, [T, O] flattened"),
        }
    )


def to_stored(record: Record) -> dict[str, Any]:
    """Record -> the dict a builder yields."""
    return {
        "id": record["id"].encode(),
        "source": record["source"].encode(),
        "file": record["file"].encode(),
        "frames": record["frames"],
        "frame_indices": record["frame_indices"],
        "height": np.int32(record["height"]),
        "width": np.int32(record["width"]),
        "object_ids": record["object_ids"],
        "rle_counts": record["rle_counts"].reshape(-1),
        "valid": record["valid"].reshape(-1),
    }


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def from_stored(example: dict[str, Any]) -> Record:
    """What a TFDS data source returns -> the record the raw reader gave."""
    t, o = len(example["frames"]), len(example["object_ids"])
    frames = np.empty(t, dtype=object)
    frames[:] = [bytes(f) for f in example["frames"]]
    counts = np.empty(t * o, dtype=object)
    counts[:] = [bytes(c) for c in example["rle_counts"]]
    return {
        "id": _text(example["id"]),
        "source": _text(example["source"]),
        "file": _text(example["file"]),
        "frames": frames,
        "frame_indices": np.asarray(example["frame_indices"], np.int32),
        "height": int(example["height"]),
        "width": int(example["width"]),
        "object_ids": np.asarray(example["object_ids"], np.int32),
        "rle_counts": counts.reshape(t, o),
        "valid": np.asarray(example["valid"], bool).reshape(t, o),
    }


class _RecordBuilder(tfds.core.GeneratorBasedBuilder):
    """Writes the records of a raw source (made by ``make_source()``) as one ``train`` split."""

    VERSION = tfds.core.Version(DATASET_VERSION)
    RELEASE_NOTES = {DATASET_VERSION: "Records of data_pipelines.records, Tensor features only."}

    def __init__(
        self,
        *,
        make_source: Callable[[], Any] | None = None,
        workers: int = 0,
        check_masks: bool = False,
        **kwargs: Any,
    ):
        self._make_source = make_source
        self._workers = workers
        self._check_masks = check_masks
        self.skipped: list[dict[str, str]] = []
        self.examples = 0
        super().__init__(file_format="array_record", **kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        # disable_shuffling: stored order = raw reader order (minus skipped examples).
        return self.dataset_info_from_configs(
            features=_features(), homepage="https://ai.meta.com/datasets/", disable_shuffling=True
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict[str, Iterator]:
        del dl_manager  # local files only
        if self._make_source is None:
            raise ValueError("builder was created without a source to prepare")
        return {"train": self._generate_examples()}

    def _generate_examples(self) -> Iterator[tuple[str, dict[str, Any]]]:
        source = self._make_source()
        # Reading and checking run in Grain worker processes (in order); writing stays here.
        checked = grain.MapDataset.source(source).map(_Checked(self._check_masks)).to_iter_dataset()
        if self._workers > 0:
            if not flags.FLAGS.is_parsed():  # grain's mp_prefetch reads absl flags
                flags.FLAGS.mark_as_parsed()
            checked = checked.mp_prefetch(grain.MultiprocessingOptions(num_workers=self._workers))
        for item in tqdm(checked, total=len(source), desc=f"prepare {self.name}", unit="example"):
            if "skipped_file" in item:
                log.warning("skipped %s: %s", item["skipped_file"], item["reason"])
                self.skipped.append({"file": item["skipped_file"], "reason": item["reason"]})
                continue
            self.examples += 1
            yield _text(item["id"]), item


class _Checked:
    """Grain map: record -> its stored form, or ``{"skipped_file", "reason"}`` (picklable)."""

    def __init__(self, check_masks: bool):
        self.check_masks = check_masks

    def __call__(self, record: Record) -> dict[str, Any]:
        try:
            validate_record(record, masks=self.check_masks)
        except SkippedExample as e:
            return {"skipped_file": e.file, "reason": e.reason}
        return to_stored(record)


class Sa1bRecords(_RecordBuilder):
    """SA-1B images as records (1 frame each)."""


class SavRecords(_RecordBuilder):
    """SA-V train videos as records (annotated 6 fps frames)."""


BUILDERS: dict[str, type[_RecordBuilder]] = {"sa1b": Sa1bRecords, "sav": SavRecords}
