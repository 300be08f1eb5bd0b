"""Reading prepared (TFDS/ArrayRecord) datasets back as records, without TensorFlow."""

from __future__ import annotations

from pathlib import Path

import tensorflow_datasets as tfds

from data_pipelines.records import Record
from data_pipelines.tfds_builders import from_stored
from etam_jax.errors import EtamError


def find_dataset_dir(path: str | Path) -> Path:
    """The folder holding ``dataset_info.json``: ``path`` itself or the one prepared dataset below it."""
    path = Path(path)
    if (path / "dataset_info.json").exists():
        return path
    found = sorted(p.parent for p in path.rglob("dataset_info.json"))
    if len(found) != 1:
        raise EtamError(
            f"{path}: expected one prepared dataset (a dataset_info.json) below it, found {len(found)}"
        )
    return found[0]


def is_prepared(path: str | Path) -> bool:
    """Whether ``path`` is (or holds) a prepared dataset."""
    path = Path(path)
    return path.is_dir() and (
        (path / "dataset_info.json").exists() or any(path.glob("*/*/dataset_info.json"))
    )


class PreparedSource:
    """Random-access records of a prepared dataset; usable with ``grain.MapDataset.source``.

    Args:
        path: the dataset folder (``OUT/sa1b_records/1.0.0``) or a folder above it (``OUT``).
        split: TFDS split name.
    """

    def __init__(self, path: str | Path, split: str = "train"):
        self.path = find_dataset_dir(path)
        self.split = split
        self._source = tfds.builder_from_directory(str(self.path)).as_data_source(split=split)

    def __len__(self) -> int:
        return len(self._source)

    def __getitem__(self, index: int) -> Record:
        return from_stored(self._source[index])

    def __repr__(self) -> str:
        return f"PreparedSource({str(self.path)!r}, {self.split}, {len(self)} examples)"
