"""Greedy box non-maximum suppression on the host (torchvision ``nms`` semantics)."""

from __future__ import annotations

import numpy as np


def box_area(boxes: np.ndarray) -> np.ndarray:
    """``[N, 4]`` (x0, y0, x1, y1) -> ``[N]`` ``(x1 - x0) * (y1 - y0)``, as torchvision ``box_area``."""
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices of the boxes kept by greedy NMS, highest score first.

    As torchvision's CPU ``nms`` kernel (what the official generator's
    ``batched_nms`` with one category reduces to): visit boxes by score,
    descending (a stable sort, so ties keep input order), and drop every later
    box whose IoU with a kept one is above ``iou_threshold``. IoUs in float32.

    Args:
      boxes: ``[N, 4]`` (x0, y0, x1, y1).
      scores: ``[N]``.
      iou_threshold: boxes overlapping more than this are suppressed.

    Returns:
      ``[K]`` int64 indices into ``boxes``.
    """
    boxes = np.asarray(boxes, np.float32)
    order = np.argsort(-np.asarray(scores), kind="stable")
    areas = box_area(boxes)
    suppressed = np.zeros(len(boxes), bool)
    keep = []
    for pos, i in enumerate(order):
        if suppressed[i]:
            continue
        keep.append(i)
        rest = order[pos + 1 :]
        lo = np.maximum(boxes[i, :2], boxes[rest, :2])
        hi = np.minimum(boxes[i, 2:], boxes[rest, 2:])
        inter = np.prod(np.maximum(hi - lo, np.float32(0)), axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):  # 0/0 (empty boxes): kept
            iou = inter / (areas[i] + areas[rest] - inter)
        suppressed[rest[iou > iou_threshold]] = True
    return np.asarray(keep, np.int64)
