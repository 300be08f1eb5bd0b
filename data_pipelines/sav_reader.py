"""SA-V train reader: ``sav_<id>.mp4`` + ``sav_<id>_manual.json`` (and ``_auto.json``).

`SAVSource` is a random-access source of records (`data_pipelines.records`):
one record per video with its annotated frames only (every 4th frame, the
6 fps masklet grid), decoded from the mp4 with PyAV and re-encoded as JPEG so
raw and prepared (ArrayRecord) data give identical records. A video or json
that cannot be read becomes an error record, skipped when decoded; so does a
json that contradicts itself or its video (``masklet`` must have exactly
ceil(N / 4) entries for an N-frame mp4, one mask per ``masklet_id`` of the
video's frame size; the count fields of the SA-V layout must agree), with the
json, the field, and found vs expected in the reason.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from data_pipelines.records import (
    ANNOTATION_STRIDE,
    Record,
    encode_jpeg,
    error_record,
    make_record,
)
from data_pipelines.video_io import VideoReadError, read_mp4
from etam_jax.errors import EtamError

log = logging.getLogger(__name__)
ANNOTATION_KINDS = ("manual", "auto")
AUTO_ID_OFFSET = 1_000_000  # auto masklet ids follow the manual ones without colliding


# Per-masklet lists of the SA-V json (sav_dataset/README.md): one entry per masklet_id.
PER_MASKLET_FIELDS = (
    "masklet_size_rel",
    "masklet_size_abs",
    "masklet_size_bucket",
    "masklet_visibility_changes",
    "masklet_first_appeared_frame",
    "masklet_frame_count",
    "masklet_edited_frame_count",
    "masklet_type",
    "masklet_stability_score",
)
JSON_ERRORS = (KeyError, ValueError, TypeError, AttributeError, OSError)


class JsonError(Exception):
    """A json that cannot be read, or contradicts itself or its video; ``file`` names it."""

    def __init__(self, file: str, reason: str):
        super().__init__(f"{file}: {reason}")
        self.file = file
        self.reason = reason


class _Inconsistent(ValueError):
    """A json field whose value contradicts the masklet or the video."""


def _expect(field: str, found: object, expected: object, basis: str) -> None:
    """Raises `_Inconsistent` naming ``field`` with found vs expected unless they are equal."""
    if found != expected:
        raise _Inconsistent(f"{field}: found {found}, expected {expected} ({basis})")


def _expect_range(field: str, values: Sequence, low: int, high: int, basis: str) -> None:
    """Every entry of the per-masklet list ``field`` must lie in ``[low, high]``."""
    for k, value in enumerate(values):
        if not low <= value <= high:
            raise _Inconsistent(f"{field}[{k}]: found {value}, expected {low}..{high} ({basis})")


@contextmanager
def _blame(path: Path) -> Iterator[None]:
    """Turns any error reading or checking the json ``path`` into a `JsonError` naming it."""
    try:
        yield
    except _Inconsistent as e:
        raise JsonError(str(path), str(e)) from e
    except JSON_ERRORS as e:
        reason = f"missing key {e}" if isinstance(e, KeyError) else f"{type(e).__name__}: {e}"
        raise JsonError(str(path), reason) from e


def _masklet_ids(meta: dict) -> list[int]:
    """The masklet ids of one json; its masklet and per-masklet lists checked against them."""
    masklet, ids = meta["masklet"], [int(i) for i in meta["masklet_id"]]
    if not masklet:
        raise _Inconsistent("len(masklet): found 0, expected one entry per annotated frame")
    _expect("distinct masklet_id", len(set(ids)), len(ids), f"len(masklet_id) of {ids}")
    for t, frame in enumerate(masklet):
        _expect(f"len(masklet[{t}])", len(frame), len(ids), "one mask per masklet_id")
    if "masklet_num" in meta:
        _expect("masklet_num", meta["masklet_num"], len(ids), "len(masklet_id)")
    for field in PER_MASKLET_FIELDS:
        if meta.get(field) is not None:
            _expect(f"len({field})", len(meta[field]), len(ids), "one entry per masklet_id")
    return ids


def _check_against_video(meta: dict, video: Path, num_frames: int, h: int, w: int) -> None:
    """Checks a json's counts and sizes against its video (``num_frames`` frames of ``h x w``)."""
    t_video = -(-num_frames // ANNOTATION_STRIDE)  # frames 0, 4, 8, ... < num_frames
    seen = f"{video.name}: {num_frames} frames of {h}x{w}, {t_video} annotated"
    _expect(
        "len(masklet)",
        len(meta["masklet"]),
        t_video,
        f"{seen}, every {ANNOTATION_STRIDE}th: ceil({num_frames} / {ANNOTATION_STRIDE})",
    )
    decoded = {
        "video_frame_count": num_frames,
        "video_height": h,
        "video_width": w,
        "video_resolution": h * w,
    }
    for field, value in decoded.items():
        if field in meta:
            _expect(field, meta[field], value, seen)
    bounds = {  # per-masklet counts: (lowest, highest) a value can be
        "masklet_first_appeared_frame": (0, num_frames - 1),
        "masklet_frame_count": (0, t_video),
        "masklet_edited_frame_count": (0, t_video),
        "masklet_visibility_changes": (0, t_video - 1),
    }
    for field, (low, high) in bounds.items():
        _expect_range(field, meta.get(field) or [], low, high, seen)
    for k, scores in enumerate(meta.get("masklet_stability_score") or []):
        if scores is not None:
            _expect(f"len(masklet_stability_score[{k}])", len(scores), t_video, seen)
    for t, frame in enumerate(meta["masklet"]):
        for o, rle in enumerate(frame):
            size = [int(s) for s in rle["size"]]
            _expect(f"masklet[{t}][{o}].size (frame {t * ANNOTATION_STRIDE})", size, [h, w], seen)


def _load_annotations(paths: Sequence[Path]) -> tuple[list[dict], list[int]]:
    """The jsons of one video (manual first, then auto), checked against themselves; joined ids."""
    metas: list[dict] = []
    all_ids: list[int] = []
    for kind_index, path in enumerate(paths):
        with _blame(path):
            metas.append(json.loads(path.read_text()))
            ids = _masklet_ids(metas[-1])
        all_ids += [i + kind_index * AUTO_ID_OFFSET for i in ids]
    return metas, all_ids


def sav_record(video: Path, json_paths: Sequence[Path]) -> Record:
    """Reads one video's annotated frames and masklets into a record.

    Raises:
        JsonError: a json cannot be read, misses keys, or contradicts itself or the video
            (`_masklet_ids`, `_check_against_video`); it names the json and the field.
        VideoReadError: the mp4 cannot be decoded.
    """
    metas, ids = _load_annotations(json_paths)
    # Decoding to the end counts the frames: the masklet covers exactly frames 0, 4, 8, ... < N.
    frames, num_frames = read_mp4(video, stride=ANNOTATION_STRIDE)
    h, w = frames[0].shape[:2]
    counts = np.empty((len(frames), len(ids)), dtype=object)
    first = 0  # column of the json's first masklet (manual, then auto)
    for path, meta in zip(json_paths, metas):
        with _blame(path):
            _check_against_video(meta, video, num_frames, h, w)
            for t, frame in enumerate(meta["masklet"]):
                counts[t, first : first + len(frame)] = [rle["counts"].encode() for rle in frame]
        first += len(meta["masklet"][0])
    return make_record(
        id=video.stem,
        source="sav",
        file=str(json_paths[0]),
        frames=[encode_jpeg(f) for f in frames],
        frame_indices=range(0, num_frames, ANNOTATION_STRIDE),
        height=h,
        width=w,
        object_ids=ids,
        rle_counts=counts,
        valid=np.ones(counts.shape, bool),
    )


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
            raise EtamError(
                f"SA-V annotations {list(annotations)}: expected a subset of {list(ANNOTATION_KINDS)}"
            )
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
        except JsonError as e:
            return error_record(id=video.stem, source="sav", file=e.file, reason=e.reason)

    def __repr__(self) -> str:
        return f"SAVSource({str(self.root)!r}, {len(self)} videos, {'+'.join(self.annotations)})"
