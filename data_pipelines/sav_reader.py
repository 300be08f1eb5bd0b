"""SA-V train reader: ``sav_<id>.mp4`` + ``sav_<id>_manual.json`` (and ``_auto.json``).

`SAVSource` is a random-access source of records (`data_pipelines.records`):
one record per video with its annotated frames only (every 4th frame, the
6 fps masklet grid), decoded from the mp4 with PyAV and re-encoded as JPEG so
raw and prepared (ArrayRecord) data give identical records. A video or json
that cannot be read becomes an error record, skipped when decoded.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Sequence

import numpy as np

from data_pipelines.records import ANNOTATION_STRIDE, Record, encode_jpeg, error_record, make_record
from data_pipelines.video_io import VideoReadError, read_mp4
from etam_jax.errors import EtamError

log = logging.getLogger(__name__)
ANNOTATION_KINDS = ("manual", "auto")
AUTO_ID_OFFSET = 1_000_000  # auto masklet ids follow the manual ones without colliding


def _masklets(meta: dict, file: str) -> tuple[list[list[dict]], list[int]]:
    """(masklet [T][O] RLE dicts, masklet ids) of one json, with consistency checks."""
    masklet, ids = meta["masklet"], [int(i) for i in meta["masklet_id"]]
    for t, frame in enumerate(masklet):
        if len(frame) != len(ids):
            raise ValueError(f"{file}: masklet frame {t} has {len(frame)} objects, masklet_id has {len(ids)}")
    return masklet, ids


def _load_annotations(paths: Sequence[Path]) -> tuple[list[list[dict]], list[int]]:
    """Joins the masklets of several jsons of one video (manual first, then auto)."""
    joined: list[list[dict]] | None = None
    all_ids: list[int] = []
    for kind_index, path in enumerate(paths):
        masklet, ids = _masklets(json.loads(path.read_text()), str(path))
        if joined is None:
            joined = [list(f) for f in masklet]
        elif len(masklet) != len(joined):
            raise ValueError(f"{path}: {len(masklet)} annotated frames, other json has {len(joined)}")
        else:
            for frame, extra in zip(joined, masklet):
                frame.extend(extra)
        all_ids += [i + kind_index * AUTO_ID_OFFSET for i in ids]
    return joined or [], all_ids


def sav_record(video: Path, json_paths: Sequence[Path]) -> Record:
    """Reads one video's annotated frames and masklets into a record.

    Raises:
        KeyError, ValueError, TypeError: json missing keys or inconsistent with the video.
        VideoReadError: the mp4 cannot be decoded or is shorter than the masklets.
    """
    masklet, ids = _load_annotations(json_paths)
    if not masklet:
        raise ValueError(f"{json_paths[0]}: empty masklet")
    indices = [t * ANNOTATION_STRIDE for t in range(len(masklet))]
    frames, _ = read_mp4(video, indices)
    h, w = frames[0].shape[:2]
    counts = np.empty((len(masklet), len(ids)), dtype=object)
    for t, frame in enumerate(masklet):
        for o, rle in enumerate(frame):
            if [int(s) for s in rle["size"]] != [h, w]:
                raise ValueError(f"frame {indices[t]} object {ids[o]}: RLE size {rle['size']} != video size {[h, w]}")
            counts[t, o] = rle["counts"].encode()
    return make_record(
        id=video.stem, source="sav", file=str(json_paths[0]), frames=[encode_jpeg(f) for f in frames],
        frame_indices=indices, height=h, width=w, object_ids=ids, rle_counts=counts,
        valid=np.ones(counts.shape, bool))


class SAVSource:
    """Random-access SA-V train records from ``root`` (searched recursively for ``sav_*.mp4``).

    Args:
        root: folder of videos and jsons.
        annotations: which jsons to use, ``("manual",)`` (default) or ``("manual", "auto")``;
            a missing ``_auto.json`` is allowed (not every video has one), a missing
            ``_manual.json`` makes an error record.
    """

    def __init__(self, root: str | Path, annotations: Sequence[str] = ("manual",)):
        self.root = Path(root)
        bad = [a for a in annotations if a not in ANNOTATION_KINDS]
        if bad or not annotations:
            raise EtamError(f"SA-V annotations {list(annotations)}: expected a subset of {list(ANNOTATION_KINDS)}")
        self.annotations = tuple(annotations)
        if not self.root.is_dir():
            raise EtamError(f"SA-V source {self.root} is not a folder")
        self._videos = sorted(self.root.rglob("sav_*.mp4"), key=lambda p: (p.stem, str(p)))
        if not self._videos:
            raise EtamError(f"SA-V source {self.root}: no sav_*.mp4 files found")

    def __len__(self) -> int:
        return len(self._videos)

    def json_paths(self, index: int) -> list[Path]:
        """The annotation files used for video ``index`` (manual first)."""
        video = self._videos[index]
        paths = [video.with_name(f"{video.stem}_{kind}.json") for kind in self.annotations]
        return [p for p in paths if p.exists() or p.name.endswith("_manual.json")]

    def __getitem__(self, index: int) -> Record:
        video = self._videos[index]
        paths = self.json_paths(index)
        try:
            return sav_record(video, paths)
        except VideoReadError as e:
            return error_record(id=video.stem, source="sav", file=str(video), reason=str(e))
        except (KeyError, ValueError, TypeError, AttributeError, OSError) as e:
            reason = f"missing key {e}" if isinstance(e, KeyError) else f"{type(e).__name__}: {e}"
            return error_record(id=video.stem, source="sav", file=str(paths[0]), reason=reason)

    def __repr__(self) -> str:
        return f"SAVSource({str(self.root)!r}, {len(self)} videos, {'+'.join(self.annotations)})"
