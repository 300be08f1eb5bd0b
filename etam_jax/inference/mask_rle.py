"""Run-length encoding of binary masks (ports of ``sam2.utils.amg``'s RLE helpers).

Uncompressed RLE is pycocotools' format: ``{"size": [H, W], "counts": [...]}``
with alternating background/foreground run lengths over the mask in column-major
(Fortran) order, starting with background; COCO RLE is the same compressed to a
string by pycocotools.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def mask_to_rle(masks_nhw: np.ndarray) -> list[dict[str, Any]]:
    """As ``mask_to_rle_pytorch``: ``[N, H, W]`` bool masks -> N uncompressed RLEs."""
    n, h, w = masks_nhw.shape
    flat = np.asarray(masks_nhw, bool).transpose(0, 2, 1).reshape(n, h * w)
    rows, cols = np.nonzero(flat[:, 1:] != flat[:, :-1])  # row-sorted change positions
    starts = np.searchsorted(rows, np.arange(n + 1))
    out = []
    for i in range(n):
        bounds = np.concatenate([[0], cols[starts[i] : starts[i + 1]] + 1, [h * w]])
        counts = [0] if flat[i, 0] else []  # runs start with background
        counts.extend(np.diff(bounds).tolist())
        out.append({"size": [h, w], "counts": counts})
    return out


def rle_to_mask(rle: dict[str, Any]) -> np.ndarray:
    """An uncompressed RLE -> ``[H, W]`` bool mask (``rle_to_mask``)."""
    h, w = rle["size"]
    values = np.arange(len(rle["counts"])) % 2 == 1  # background, foreground, ...
    flat = np.repeat(values, rle["counts"])
    return flat.reshape(w, h).T


def area_from_rle(rle: dict[str, Any]) -> int:
    """Foreground pixels of an uncompressed RLE."""
    return int(sum(rle["counts"][1::2]))


def coco_encode_rle(rle: dict[str, Any]) -> dict[str, Any]:
    """Uncompressed -> COCO (compressed) RLE with ``counts`` as str, JSON-ready."""
    from pycocotools import mask as mask_utils

    h, w = rle["size"]
    coco = mask_utils.frPyObjects(rle, h, w)
    coco["counts"] = coco["counts"].decode("utf-8")
    return coco
