"""SA-1B reader: tar shards of ``sa_<id>.jpg`` + ``sa_<id>.json``, or the same files extracted.

`SA1BSource` is a random-access source (``len``, ``[i]``) of records
(`data_pipelines.records`) usable as ``grain.MapDataset.source(SA1BSource(dir))``.
Tar members are located once at construction and read later by offset, so a
record costs two ``pread``s and no tar parsing; the source pickles to workers.
Files that cannot be read become error records, skipped when decoded.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import tarfile
from pathlib import Path

import numpy as np

from data_pipelines.records import Record, error_record, make_record
from etam_jax.errors import EtamError

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class _Blob:
    """Bytes of one file: a plain file (offset -1) or a span of a tar shard."""

    path: str
    offset: int = -1
    size: int = -1

    def read(self) -> bytes:
        if self.offset < 0:
            return Path(self.path).read_bytes()
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            return f.read(self.size)


def _index_tar(path: Path) -> dict[str, _Blob]:
    try:
        with tarfile.open(path) as tar:
            return {
                Path(m.name).name: _Blob(str(path), m.offset_data, m.size)
                for m in tar.getmembers()
                if m.isfile()
            }
    except (tarfile.TarError, OSError) as e:
        log.warning("skipping unreadable SA-1B shard %s (%s)", path, e)
        return {}


def _index(root: Path) -> list[tuple[str, _Blob, _Blob, str]]:
    """(id, jpg, json, file label) for every image with both files, sorted by shard then id."""
    if not root.exists():
        raise EtamError(f"SA-1B source {root} does not exist")
    shards = [root] if root.is_file() else sorted(root.rglob("*.tar"))
    groups = [(str(s), _index_tar(s)) for s in shards]
    if root.is_dir():
        loose = {p.name: _Blob(str(p)) for p in root.rglob("sa_*") if p.suffix in (".jpg", ".json")}
        groups.append((str(root), loose))
    items = []
    for label, files in groups:
        stems = sorted({Path(n).stem for n in files if n.startswith("sa_")}, key=_id_key)
        for stem in stems:
            jpg, meta = files.get(stem + ".jpg"), files.get(stem + ".json")
            if jpg is None or meta is None:
                log.warning(
                    "SA-1B %s: %s has no matching %s",
                    label,
                    stem,
                    ".json" if meta is None else ".jpg",
                )
                continue
            items.append(
                (stem, jpg, meta, f"{label}:{stem}.json" if label.endswith(".tar") else meta.path)
            )
    if not items:
        raise EtamError(
            f"SA-1B source {root}: no sa_*.jpg + sa_*.json pairs found (in *.tar shards or extracted)"
        )
    return items


def _id_key(stem: str) -> tuple[int, str]:
    tail = stem[3:]
    return (int(tail), stem) if tail.isdigit() else (-1, stem)


def sa1b_record(stem: str, jpeg: bytes, meta: dict, file: str) -> Record:
    """Builds a record from an image and its parsed json.

    Raises:
        KeyError, TypeError, ValueError: json missing keys or malformed.
    """
    image = meta["image"]
    h, w = int(image["height"]), int(image["width"])
    anns = meta["annotations"]
    for a in anns:
        size = [int(s) for s in a["segmentation"]["size"]]
        if size != [h, w]:
            raise ValueError(f"annotation {a.get('id')}: RLE size {size} != image size {[h, w]}")
    counts = np.empty((1, len(anns)), dtype=object)
    counts[0, :] = [a["segmentation"]["counts"].encode() for a in anns]
    return make_record(
        id=stem,
        source="sa1b",
        file=file,
        frames=[jpeg],
        frame_indices=[0],
        height=h,
        width=w,
        object_ids=[int(a["id"]) for a in anns],
        rle_counts=counts,
        valid=np.ones((1, len(anns)), bool),
    )


class SA1BSource:
    """Random-access SA-1B records from tar shards and/or extracted files under ``root``.

    Args:
        root: a folder (searched recursively for ``*.tar`` and ``sa_*.jpg/json``) or one tar shard.
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self._items = _index(self.root)

    def __len__(self) -> int:
        return len(self._items)

    def __getitem__(self, index: int) -> Record:
        stem, jpg, meta, file = self._items[index]
        try:
            return sa1b_record(stem, jpg.read(), json.loads(meta.read()), file)
        except (KeyError, TypeError, ValueError, AttributeError, OSError) as e:
            reason = f"missing key {e}" if isinstance(e, KeyError) else f"{type(e).__name__}: {e}"
            return error_record(id=stem, source="sa1b", file=file, reason=reason)

    def __repr__(self) -> str:
        return f"SA1BSource({str(self.root)!r}, {len(self)} images)"
