"""PROMPTS.json: parsing and validation for `etam track` and `etam segment`.

The file is a JSON list of entries, coordinates in original pixels::

    [{"frame": 0, "obj_id": 1, "points": [[x, y], ...], "labels": [1, 0, ...]},
     {"frame": 3, "obj_id": 2, "box": [x0, y0, x1, y1]},
     {"frame": 0, "obj_id": 3, "mask": "masks/obj3.png"}]

`segment` uses the same entries without ``"frame"``. An entry may combine
points, a box and a mask; a mask path is relative to the JSON file's folder.
Every problem raises `EtamError` naming the file, the entry and the object.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import numpy as np
from PIL import Image

from etam_jax.errors import EtamError

_KNOWN_KEYS = frozenset({"frame", "obj_id", "points", "labels", "box", "mask"})


@dataclasses.dataclass(frozen=True)
class Prompt:
    """One object's prompt on one frame (or on the image, for `segment`).

    Attributes:
        obj_id: the user's object id.
        frame: frame index into the sorted frame list; None for `segment`.
        points: [N, 2] float32 (x, y) in original pixels, or None.
        labels: [N] int32, 1 = foreground click, 0 = background click, or None.
        box: [4] float32 (x0, y0, x1, y1) in original pixels, or None.
        mask: [H, W] bool at the original image size, or None.
        where: "FILE entry K" for error messages.
    """

    obj_id: int
    frame: int | None
    points: np.ndarray | None
    labels: np.ndarray | None
    box: np.ndarray | None
    mask: np.ndarray | None
    where: str


def load_prompts(
    path: str,
    image_hw: tuple[int, int],
    num_frames: int | None = None,
) -> list[Prompt]:
    """Reads and validates a PROMPTS.json file.

    Args:
        path: the JSON file.
        image_hw: (H, W) of the original frames / image; points and boxes must
            lie inside [0, W] x [0, H] and masks must have exactly this size.
        num_frames: number of frames for `track` (every entry needs a
            ``"frame"`` in [0, num_frames)); None for `segment` (no ``"frame"``).

    Returns:
        The prompts in file order.

    Raises:
        EtamError: unreadable file, bad JSON, unknown key, missing or wrong
            value, coordinates outside the image, mask of another size, an
            entry without any prompt, or the same object twice on one frame.
    """
    entries = _read_json_list(path)
    prompts = [
        _parse_entry(entry, f"{path} entry {k}", os.path.dirname(path), image_hw, num_frames)
        for k, entry in enumerate(entries)
    ]
    _check_unique(prompts)
    return prompts


def group_by_object(prompts: list[Prompt]) -> dict[int, list[Prompt]]:
    """Groups prompts by obj_id (ids in order of first appearance, frames sorted)."""
    groups: dict[int, list[Prompt]] = {}
    for p in prompts:
        groups.setdefault(p.obj_id, []).append(p)
    return {k: sorted(v, key=lambda p: p.frame or 0) for k, v in groups.items()}


def _read_json_list(path: str) -> list[Any]:
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        raise EtamError(f"{path}: prompts file not found") from None
    except (OSError, UnicodeDecodeError) as e:
        raise EtamError(f"{path}: cannot read prompts file ({e})") from None
    except json.JSONDecodeError as e:
        raise EtamError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(data, list) or not data:
        raise EtamError(f"{path}: expected a non-empty JSON list of prompt entries")
    return data


def _parse_entry(
    entry: Any, where: str, base_dir: str, image_hw: tuple[int, int], num_frames: int | None
) -> Prompt:
    if not isinstance(entry, dict):
        raise EtamError(f"{where}: expected an object, found {type(entry).__name__}")
    unknown = sorted(set(entry) - _KNOWN_KEYS)
    if unknown:
        raise EtamError(f"{where}: unknown key(s) {unknown}; known: {sorted(_KNOWN_KEYS)}")
    obj_id = _int_field(entry, "obj_id", where)
    where = f"{where} (obj_id {obj_id})"
    frame = _parse_frame(entry, where, num_frames)
    points, labels = _parse_points(entry, where, image_hw)
    box = _parse_box(entry.get("box"), where, image_hw)
    mask = _load_mask(entry.get("mask"), where, base_dir, image_hw)
    if points is None and box is None and mask is None:
        raise EtamError(f"{where}: object has no prompt; give 'points'+'labels', 'box' or 'mask'")
    return Prompt(obj_id, frame, points, labels, box, mask, where)


def _int_field(entry: dict, key: str, where: str) -> int:
    if key not in entry:
        raise EtamError(f"{where}: missing '{key}'")
    value = entry[key]
    if isinstance(value, bool) or not isinstance(value, int):
        raise EtamError(f"{where}: '{key}' must be an integer, found {value!r}")
    return value


def _parse_frame(entry: dict, where: str, num_frames: int | None) -> int | None:
    if num_frames is None:
        if "frame" in entry:
            raise EtamError(f"{where}: 'frame' is not allowed for a single image")
        return None
    frame = _int_field(entry, "frame", where)
    if not 0 <= frame < num_frames:
        raise EtamError(
            f"{where}: frame {frame} does not exist; the video has frames 0..{num_frames - 1}"
        )
    return frame


def _parse_points(
    entry: dict, where: str, image_hw: tuple[int, int]
) -> tuple[np.ndarray | None, np.ndarray | None]:
    if "points" not in entry and "labels" not in entry:
        return None, None
    if "points" not in entry or "labels" not in entry:
        raise EtamError(f"{where}: 'points' and 'labels' must be given together")
    points = _number_array(entry["points"], where, "points", (-1, 2))
    labels = _number_array(entry["labels"], where, "labels", (-1,))
    if len(points) == 0 or len(points) != len(labels):
        raise EtamError(
            f"{where}: expected as many labels as points (>= 1), "
            f"found {len(points)} points and {len(labels)} labels"
        )
    if not np.all(np.isin(labels, (0, 1))):
        raise EtamError(
            f"{where}: labels must be 1 (foreground) or 0 (background), found {labels.tolist()}"
        )
    for x, y in points:
        _check_inside(where, "point", (x, y), image_hw)
    return points, labels.astype(np.int32)


def _parse_box(value: Any, where: str, image_hw: tuple[int, int]) -> np.ndarray | None:
    if value is None:
        return None
    box = _number_array(value, where, "box", (4,))
    x0, y0, x1, y1 = box.tolist()
    if not (x0 < x1 and y0 < y1):
        raise EtamError(
            f"{where}: box must be [x0, y0, x1, y1] with x0 < x1 and y0 < y1, found {box.tolist()}"
        )
    _check_inside(where, "box corner", (x0, y0), image_hw)
    _check_inside(where, "box corner", (x1, y1), image_hw)
    return box


def _number_array(value: Any, where: str, key: str, shape: tuple[int, ...]) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError):
        arr = None
    if (
        arr is None
        or arr.ndim != len(shape)
        or any(s != -1 and s != a for s, a in zip(shape, arr.shape))
        or not np.all(np.isfinite(arr))
    ):
        want = {(-1, 2): "[[x, y], ...]", (-1,): "[l, ...]", (4,): "[x0, y0, x1, y1]"}[shape]
        raise EtamError(f"{where}: '{key}' must be numbers shaped {want}, found {value!r}")
    return arr


def _check_inside(
    where: str, what: str, xy: tuple[float, float], image_hw: tuple[int, int]
) -> None:
    h, w = image_hw
    x, y = xy
    if not (0 <= x <= w and 0 <= y <= h):
        raise EtamError(
            f"{where}: {what} ({x:g}, {y:g}) is outside the image (width {w}, height {h})"
        )


def _load_mask(
    value: Any, where: str, base_dir: str, image_hw: tuple[int, int]
) -> np.ndarray | None:
    """Loads a mask PNG; any non-zero pixel (any channel) is foreground."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise EtamError(f"{where}: 'mask' must be a path to a PNG, found {value!r}")
    path = os.path.join(base_dir, value)
    try:
        with Image.open(path) as img:
            arr = np.asarray(img)
    except FileNotFoundError:
        raise EtamError(f"{where}: mask file {path} not found") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise EtamError(f"{where}: cannot read mask file {path} ({e})") from None
    if arr.shape[:2] != tuple(image_hw):
        raise EtamError(
            f"{where}: mask {path} is {arr.shape[1]}x{arr.shape[0]} (WxH), "
            f"expected the image size {image_hw[1]}x{image_hw[0]}"
        )
    mask = arr != 0
    return mask.any(axis=-1) if mask.ndim == 3 else mask


def _check_unique(prompts: list[Prompt]) -> None:
    seen: dict[tuple[int, int | None], str] = {}
    for p in prompts:
        key = (p.obj_id, p.frame)
        if key in seen:
            on = "" if p.frame is None else f" on frame {p.frame}"
            raise EtamError(
                f"{p.where}: object {p.obj_id}{on} is prompted twice (also {seen[key]}); "
                "merge the entries into one"
            )
        seen[key] = p.where
