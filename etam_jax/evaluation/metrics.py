"""Per-frame VOS metrics: region similarity J and boundary F of one object.

Definitions as the DAVIS 2017 toolkit (davisvideochallenge/davis2017-evaluation,
``davis2017/metrics.py``), which the SA-V benchmark (facebookresearch/sam2,
``sav_dataset/utils/sav_benchmark.py``) repeats:

- J (``db_eval_iou``): |pred & gt| / |pred | gt|; 1 when both masks are empty.
- F (``f_measure``): boundary maps of both masks (``_seg2bmap``: a pixel is a
  boundary pixel when it differs from its right, lower or lower-right
  neighbour; in the last row only the right one counts, in the last column
  only the lower one, never the bottom-right corner). Each map is dilated
  with a disk of radius ``ceil(0.008 * image diagonal)`` (``skimage.morphology
  .disk``: x^2 + y^2 <= r^2 in a (2r+1)^2 grid; with ``cv2.dilate``);
  precision = share of predicted boundary pixels inside the dilated ground
  truth boundary, recall the converse, F their harmonic mean. An empty
  predicted boundary gives precision 1, an empty ground truth boundary recall
  1, so one empty side gives F = 0 and both empty F = 1.

Void pixels are not used: both toolkits pass none in semi-supervised mode.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

BOUND_TH = 0.008  # tolerance, as a fraction of the image diagonal


def region_similarity(gt: np.ndarray, pred: np.ndarray) -> float:
    """J of one frame, as ``db_eval_iou``.

    Args:
        gt: [H, W] ground truth (bool or 0/nonzero).
        pred: [H, W] prediction.

    Returns:
        IoU in [0, 1]; 1.0 when both masks are empty.
    """
    gt, pred = np.asarray(gt, bool), np.asarray(pred, bool)
    union = np.count_nonzero(gt | pred)
    if union == 0:
        return 1.0
    return np.count_nonzero(gt & pred) / union


def boundary_map(seg: np.ndarray) -> np.ndarray:
    """[H, W] bool boundary pixels of a mask, as ``_seg2bmap`` (see the module docstring)."""
    seg = np.asarray(seg, bool)
    b = np.zeros_like(seg)
    inner = seg[:-1, :-1]
    b[:-1, :-1] = (inner != seg[:-1, 1:]) | (inner != seg[1:, :-1]) | (inner != seg[1:, 1:])
    b[-1, :-1] = seg[-1, :-1] != seg[-1, 1:]
    b[:-1, -1] = seg[:-1, -1] != seg[1:, -1]
    return b


def boundary_tolerance(shape: tuple[int, int], bound_th: float = BOUND_TH) -> int:
    """Disk radius in pixels: ``bound_th`` itself when >= 1, else ceil(bound_th * diagonal)."""
    if bound_th >= 1:
        return int(bound_th)
    return math.ceil(bound_th * math.hypot(*shape))


def disk(radius: int) -> np.ndarray:
    """[(2r+1), (2r+1)] uint8 structuring element, 1 where x^2 + y^2 <= r^2."""
    grid = np.arange(-radius, radius + 1)
    return (grid[:, None] ** 2 + grid[None, :] ** 2 <= radius**2).astype(np.uint8)


def boundary_f(gt: np.ndarray, pred: np.ndarray, bound_th: float = BOUND_TH) -> float:
    """F of one frame, as ``db_eval_boundary`` / ``f_measure``.

    Args:
        gt: [H, W] ground truth.
        pred: [H, W] prediction.
        bound_th: tolerance (fraction of the diagonal if < 1, else pixels).

    Returns:
        Boundary F-measure in [0, 1].
    """
    gt, pred = np.asarray(gt, bool), np.asarray(pred, bool)
    kernel = disk(boundary_tolerance(gt.shape, bound_th))
    if not (gt.any() or pred.any()):
        return 1.0
    window = _around(gt | pred)
    gt_b, pred_b = boundary_map(gt[window]), boundary_map(pred[window])
    n_gt, n_pred = int(gt_b.sum()), int(pred_b.sum())
    if n_gt == 0 or n_pred == 0:
        return 1.0 if n_gt == n_pred else 0.0
    gt_dil = cv2.dilate(gt_b.view(np.uint8), kernel).astype(bool)
    pred_dil = cv2.dilate(pred_b.view(np.uint8), kernel).astype(bool)
    precision = np.count_nonzero(pred_b & gt_dil) / n_pred
    recall = np.count_nonzero(gt_b & pred_dil) / n_gt
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def _around(mask: np.ndarray, margin: int = 2) -> tuple[slice, slice]:
    """The bounding box of a non-empty `mask` grown by `margin` (clipped to the image).

    Every boundary pixel lies within one pixel of a mask pixel, and a window
    edge inside the image then only sees empty pixels, so boundary maps (and
    the matches between them) in the window equal those of the whole image;
    it only saves time.
    """
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    return (
        slice(max(rows[0] - margin, 0), rows[-1] + margin + 1),
        slice(max(cols[0] - margin, 0), cols[-1] + margin + 1),
    )


def j_and_f(j: float, f: float) -> float:
    """The headline score: (J + F) / 2."""
    return (j + f) / 2
