"""J and F against hand-computed values and a brute-force reference written here
from the DAVIS 2017 toolkit's definitions (``db_eval_iou``, ``f_measure``, ``_seg2bmap``)."""

import math

import numpy as np
import pytest

from etam_jax.evaluation.metrics import (
    boundary_f,
    boundary_map,
    boundary_tolerance,
    disk,
    region_similarity,
)


def square(shape, y0, x0, side):
    m = np.zeros(shape, bool)
    m[y0 : y0 + side, x0 : x0 + side] = True
    return m


# ---- brute-force reference -------------------------------------------------


def ref_iou(gt, pred):
    inter = sum(
        1 for y in range(gt.shape[0]) for x in range(gt.shape[1]) if gt[y, x] and pred[y, x]
    )
    union = sum(1 for y in range(gt.shape[0]) for x in range(gt.shape[1]) if gt[y, x] or pred[y, x])
    return 1.0 if union == 0 else inter / union


def ref_boundary(seg):
    """Pixel loop: differs from the right/lower/lower-right neighbour (the last row
    compares only to the right, the last column only below, the corner never)."""
    h, w = seg.shape
    out = np.zeros((h, w), bool)
    for y in range(h):
        for x in range(w):
            if y == h - 1 and x == w - 1:
                continue
            if y == h - 1:
                out[y, x] = seg[y, x] != seg[y, x + 1]
            elif x == w - 1:
                out[y, x] = seg[y, x] != seg[y + 1, x]
            else:
                out[y, x] = any(
                    seg[y, x] != seg[y + dy, x + dx] for dy, dx in ((0, 1), (1, 0), (1, 1))
                )
    return out


def ref_f(gt, pred, bound_th=0.008):
    """Matches by explicit Euclidean distance to the nearest boundary pixel of the other map."""
    radius = math.ceil(bound_th * math.sqrt(gt.shape[0] ** 2 + gt.shape[1] ** 2))
    gb, pb = np.argwhere(ref_boundary(gt)), np.argwhere(ref_boundary(pred))
    if len(gb) == 0 or len(pb) == 0:
        return 1.0 if len(gb) == len(pb) else 0.0
    d2 = ((pb[:, None, :] - gb[None, :, :]) ** 2).sum(-1)
    precision = np.mean(d2.min(1) <= radius**2)
    recall = np.mean(d2.min(0) <= radius**2)
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


# ---- hand-computed cases ----------------------------------------------------


def test_identical_disjoint_and_empty():
    a, b = square((50, 60), 5, 5, 10), square((50, 60), 30, 40, 10)
    assert region_similarity(a, a) == 1.0 and boundary_f(a, a) == 1.0
    assert region_similarity(a, b) == 0.0 and boundary_f(a, b) == 0.0
    empty = np.zeros((50, 60), bool)
    assert (
        region_similarity(empty, empty) == 1.0 and boundary_f(empty, empty) == 1.0
    )  # toolkit convention
    assert region_similarity(a, empty) == 0.0 and boundary_f(a, empty) == 0.0
    assert region_similarity(empty, a) == 0.0 and boundary_f(empty, a) == 0.0


def test_iou_by_hand():
    a, b = square((40, 40), 0, 0, 10), square((40, 40), 0, 5, 10)  # overlap 10x5
    assert region_similarity(a, b) == pytest.approx(50 / 150)


def test_tolerance_and_disk():
    assert boundary_tolerance((100, 100)) == 2  # ceil(0.008 * 141.4)
    assert boundary_tolerance((480, 854)) == 8  # DAVIS 480p
    assert boundary_tolerance((10, 10), bound_th=3) == 3
    k = disk(2)
    assert k.shape == (5, 5) and k.sum() == 13 and k[0, 2] == 1 and k[0, 1] == 0


def test_square_boundary_is_the_offset_ring():
    """A side-s square at (y0, x0) has the 4s-pixel ring of the box [y0-1, y0+s-1] x [x0-1, x0+s-1]."""
    m = square((30, 30), 10, 12, 6)
    ring = np.zeros_like(m)
    ring[9:16, 11:18] = True
    ring[10:15, 12:17] = False
    np.testing.assert_array_equal(boundary_map(m), ring)
    assert ring.sum() == 4 * 6


@pytest.mark.parametrize("shift", [(0, 1), (0, 2), (2, 0), (1, 1)])
def test_shift_within_tolerance_is_perfect(shift):
    a = square((100, 100), 30, 30, 40)
    b = square((100, 100), 30 + shift[0], 30 + shift[1], 40)
    assert boundary_f(a, b) == 1.0 and region_similarity(a, b) < 1.0


def test_shift_beyond_tolerance_by_hand():
    """Square side s shifted right by d > r (r = 2 at 100x100): of each ring's 4s pixels,
    the top and bottom rows keep s + 1 + r - d matches, the leading column r near
    each end, the trailing column none; so P = R = F = (2(s + 1 + r - d) + 2r) / 4s."""
    s, d, r = 40, 3, 2
    a, b = square((100, 100), 30, 30, s), square((100, 100), 30, 30 + d, s)
    assert boundary_f(a, b) == pytest.approx((2 * (s + 1 + r - d) + 2 * r) / (4 * s))


# ---- generated cases against the reference ----------------------------------


def blob(rng, shape):
    """A few random ellipses (some cut by the image border)."""
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    m = np.zeros(shape, bool)
    for _ in range(rng.integers(1, 4)):
        cy, cx = rng.uniform(-3, shape[0] + 3), rng.uniform(-3, shape[1] + 3)
        ry, rx = rng.uniform(2, shape[0] / 2), rng.uniform(2, shape[1] / 2)
        m |= ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
    return m


@pytest.mark.parametrize("seed", range(6))
def test_against_brute_force(seed):
    rng = np.random.default_rng(seed)
    shape = (int(rng.integers(20, 160)), int(rng.integers(20, 260)))  # tolerance 1 to 3 px
    gt = blob(rng, shape)
    pred = np.roll(gt, tuple(rng.integers(-4, 5, 2)), axis=(0, 1)) ^ (rng.random(shape) < 0.02)
    np.testing.assert_array_equal(boundary_map(gt), ref_boundary(gt))
    assert region_similarity(gt, pred) == pytest.approx(ref_iou(gt, pred), abs=1e-12)
    assert boundary_f(gt, pred) == pytest.approx(ref_f(gt, pred), abs=1e-12)
    assert 0 < boundary_f(gt, pred) < 1


def test_masks_at_the_image_edges():
    """The last row/column rules (and the corner that is never a boundary pixel)."""
    corner, last_row, full = (
        np.zeros((12, 15), bool),
        np.zeros((12, 15), bool),
        np.ones((12, 15), bool),
    )
    corner[-1, -1], last_row[-1, 3:] = True, True
    for gt, pred in [(corner, last_row), (last_row, full), (full, corner), (corner, corner)]:
        np.testing.assert_array_equal(boundary_map(gt), ref_boundary(gt))
        assert boundary_f(gt, pred) == pytest.approx(ref_f(gt, pred), abs=1e-12)
