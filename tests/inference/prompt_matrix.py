"""The prompt matrix of the CLI parity tests, and how their outputs are compared.

Every kind of prompt a user gives (issue 12): 1, 2 and 3 clicks of mixed
labels, a box alone, a box plus clicks, a mask; placed in different parts of
the frame so that each object sees other features; for videos each kind on
frame 0 and on a later frame, and a correction click on a later frame of an
object first clicked on frame 0.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from tests.official_reference import relative_error

KINDS = ("click1", "click2", "click3", "box", "box_clicks", "mask")
# Object centres as fractions of (width, height), one per kind and start frame.
CENTRES = [(0.3, 0.35), (0.7, 0.3), (0.5, 0.55), (0.25, 0.7), (0.75, 0.7), (0.45, 0.25)]


def _entry(kind: str, centre: tuple[float, float], hw: tuple[int, int], mask_path: str) -> dict:
    """One object's prompt in original pixels (x, y), of the given kind."""
    h, w = hw
    cx, cy = centre[0] * w, centre[1] * h
    dx, dy = 0.12 * w, 0.15 * h
    clicks = {
        "click1": ([[cx, cy]], [1]),
        "click2": ([[cx, cy], [cx + dx, cy - dy]], [1, 0]),
        "click3": ([[cx - dx, cy], [cx + 0.5 * dx, cy + dy], [cx, cy - dy]], [1, 0, 1]),
        "box_clicks": ([[cx, cy], [cx + 0.8 * dx, cy + 0.8 * dy]], [1, 0]),
    }
    entry: dict = {}
    if kind in ("box", "box_clicks"):
        entry["box"] = [cx - 1.3 * dx, cy - 1.2 * dy, cx + 1.1 * dx, cy + 1.4 * dy]
    if kind in clicks:
        pts, labels = clicks[kind]
        entry["points"], entry["labels"] = [[round(x, 1), round(y, 1)] for x, y in pts], labels
    if kind == "mask":
        yy, xx = np.mgrid[:h, :w]
        inside = ((xx - cx) / (1.5 * dx)) ** 2 + ((yy - cy) / (1.2 * dy)) ** 2 <= 1
        inside[int(cy) : int(cy + 0.5 * dy), int(cx) : int(cx + 0.4 * dx)] = False  # a notch
        Image.fromarray(np.where(inside, 255, 0).astype(np.uint8)).save(mask_path)
        entry["mask"] = Path(mask_path).name
    return entry


def write_prompts(
    root: Path,
    hw: tuple[int, int],
    frames: tuple[int, ...] | None,
    correction: tuple[int, int] | None = None,
) -> Path:
    """Writes ``root/prompts.json`` (and mask PNGs) with one object per kind and frame.

    Args:
        root: folder for the json and the masks.
        hw: (H, W) of the frames / image.
        frames: start frames (each gets every kind), or None for an image (no "frame").
        correction: (frame, obj_id index into KINDS) of a later negative click on a
            frame-0 object, or None.

    Returns:
        The prompts file; object ids number the entries from 1.
    """
    entries = []
    for i, start in enumerate(frames or (None,)):
        for k, kind in enumerate(KINDS):
            obj_id = 1 + i * len(KINDS) + k
            entry = _entry(
                kind, CENTRES[(k + 2 * i) % len(CENTRES)], hw, str(root / f"m{obj_id}.png")
            )
            if start is not None:
                entry["frame"] = start
            entries.append({"obj_id": obj_id, **entry})
    if correction is not None:
        frame, k = correction
        h, w = hw
        cx, cy = CENTRES[k]
        entries.append(
            {
                "frame": frame,
                "obj_id": 1 + k,
                "points": [[cx * w + 0.05 * w, cy * h]],
                "labels": [0],
            }
        )
    path = root / "prompts.json"
    path.write_text(json.dumps(entries, indent=1))
    return path


def official_mask_input(path, size: int) -> np.ndarray:
    """A binary mask PNG as the official video path makes a mask prompt: resize
    (antialiased) to the model size, >= 0.5, then down to 4g x 4g (antialiased)."""
    mask = torch.from_numpy(np.asarray(Image.open(path)) > 0).float()[None, None]
    mask = (F.interpolate(mask, (size, size), mode="bilinear", antialias=True) >= 0.5).float()
    return F.interpolate(mask, (size // 4, size // 4), mode="bilinear", antialias=True)[0].numpy()


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def by_object_frame(logits: dict) -> dict:
    """``{obj_id: {frame: x}}`` as ``{(obj_id, frame): x}`` (for `assert_logits_match`)."""
    return {(o, t): x for o, per_frame in logits.items() for t, x in per_frame.items()}


def assert_logits_match(got: dict, want: dict, hw: tuple[int, int], label: str = "") -> None:
    """Every (key -> [H, W] logits) of `want` in `got`: rel err <= 1e-3, IoU >= 0.99;
    and the reference has both signs on >= 80% of the outputs (else it proves little)."""
    assert sorted(got) == sorted(want), f"{label}: outputs {sorted(got)} != {sorted(want)}"
    failures, two_signs = [], 0
    for key, ref in want.items():
        ours = got[key]
        assert ours.shape == ref.shape == tuple(hw) and ours.dtype == np.float32, (key, ours.shape)
        err, iou = relative_error(ours, ref), mask_iou(ours > 0, ref > 0)
        if err > 1e-3 or iou < 0.99:
            failures.append(f"{label} {key}: rel err {err:.2e}, IoU {iou:.4f}")
        two_signs += bool((ref > 0).any() and (ref < 0).any())
    assert not failures, "\n".join(failures)
    assert two_signs >= 0.8 * len(want), f"{label}: only {two_signs}/{len(want)} have both signs"
