"""point_sampling.py: clicks land uniformly in the GT / error region, boxes bound the mask (jit)."""

import jax
import numpy as np

from etam_jax.training import point_sampling as pts
from tests.training.test_prompt_simulation import _keys, _rect


def test_uniform_draw_over_a_small_region():
    gt = np.zeros((32, 32), bool)
    cells = [(3, 4), (3, 5), (10, 20), (31, 31), (0, 0), (17, 2)]
    for y, x in cells:
        gt[y, x] = True
    n = 6000
    xy, lab = jax.jit(jax.vmap(lambda k: pts.sample_points_from_errors(k, gt, None)))(_keys(n))
    xy, lab = np.asarray(xy).astype(int), np.asarray(lab)
    assert (lab == 1).all() and gt[xy[:, 1], xy[:, 0]].all()
    counts = np.array([np.sum((xy[:, 1] == y) & (xy[:, 0] == x)) for y, x in cells])
    expected = n / len(cells)
    assert np.abs(counts - expected).max() < 5 * np.sqrt(expected)  # chi-square scale


def test_error_region_clicks_and_labels():
    gt = _rect(32, 4, 20, 4, 20)  # 256 px
    pred = _rect(32, 10, 30, 10, 24)  # FN 256-100=156 px, FP 280-100=180 px
    fn, fp = gt & ~pred, pred & ~gt
    n = 4000
    xy, lab = jax.jit(jax.vmap(lambda k: pts.sample_points_from_errors(k, gt, pred)))(_keys(n))
    xy, lab = np.asarray(xy).astype(int), np.asarray(lab)
    y, x = xy[:, 1], xy[:, 0]
    assert (fn[y, x] | fp[y, x]).all()
    np.testing.assert_array_equal(lab, fn[y, x].astype(int))  # FN -> positive
    assert abs(lab.mean() - fn.sum() / (fn.sum() + fp.sum())) < 0.04


def test_exact_prediction_and_empty_masks():
    full = np.ones((16, 16), bool)
    gt = _rect(16, 2, 6, 2, 6)
    empty = np.zeros((16, 16), bool)
    sample = jax.jit(jax.vmap(pts.sample_points_from_errors, in_axes=(0, None, None)))
    # Right prediction: a negative background click.
    xy, lab = sample(_keys(500), gt, gt)
    assert (np.asarray(lab) == 0).all() and not gt[
        np.asarray(xy[:, 1], int), np.asarray(xy[:, 0], int)
    ].any()
    # Empty GT, empty prediction: a negative click anywhere (both halves reached).
    xy, lab = sample(_keys(500), empty, empty)
    assert (np.asarray(lab) == 0).all() and np.ptp(np.asarray(xy)) > 10
    # No region at all (full GT predicted exactly): the official fallback (0, 0), label 0.
    xy, lab = sample(_keys(4), full, full)
    assert (np.asarray(xy) == 0).all() and (np.asarray(lab) == 0).all()


def test_boxes_bound_the_mask():
    masks = np.stack([_rect(64, 10, 40, 5, 60), _rect(64, 30, 31, 33, 34), _rect(64, 0, 64, 0, 64)])
    extent = np.array([[5, 10, 59, 39], [33, 30, 33, 30], [0, 0, 63, 63]], float)
    exact, lab = jax.jit(lambda k: pts.sample_box_points(k, masks, 0.0, 20.0))(jax.random.key(0))
    np.testing.assert_array_equal(np.asarray(exact).reshape(3, 4), extent)
    assert (np.asarray(lab) == [2, 3]).all()
    n = 2000
    noisy, _ = jax.jit(jax.vmap(lambda k: pts.sample_box_points(k, masks, 0.1, 3.0)))(_keys(n))
    noisy = np.asarray(noisy).reshape(n, 3, 4)
    side = (extent[:, 2:] - extent[:, :2])[:, [0, 1, 0, 1]]
    bound = np.minimum(side * 0.1, 3.0)
    dev = noisy - extent
    assert (np.abs(dev) <= bound + 1e-5).all() and (noisy >= 0).all() and (noisy <= 63).all()
    # Box 0: noise bounded by 0.1 * side (x: 5.4 -> 3 by the pixel bound, y: 2.9), both signs.
    assert dev[:, 0].min() < -2.5 and dev[:, 0].max() > 2.5 and abs(dev[:, 0].mean()) < 0.15
    assert dev[:, 0, 1].max() > 2.5 and dev[:, 0, 1].max() <= 2.9 + 1e-5
