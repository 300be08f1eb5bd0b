"""prompt_simulation.py: statistical properties of the simulated prompts, all under jax.jit."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from etam_jax.errors import EtamError
from etam_jax.training import prompt_simulation as ps

CFG = ps.default_config()
DRAWS = 4000  # binomial p=0.5: sd 0.008, so 0.04 is 5 sd


def _rect(size, y0, y1, x0, x1):
    m = np.zeros((size, size), bool)
    m[y0:y1, x0:x1] = True
    return m


def _keys(n, seed=0):
    return jax.random.split(jax.random.key(seed), n)


@functools.cache
def _schedules(num_frames):
    plans = jax.jit(jax.vmap(lambda k: ps.sample_schedule(k, num_frames, CFG)))(_keys(DRAWS))
    return jax.tree.map(np.asarray, plans)


def test_schedule_probabilities_and_structure():
    p = _schedules(5)
    pt = ~p.use_mask_input
    assert abs(p.use_mask_input.mean() - 0.5) < 0.04
    assert p.is_init_cond[:, 0].all()  # the first frame always conditions
    n_init = p.is_init_cond.sum(1)
    assert set(n_init) == {1, 2} and abs((n_init == 2).mean() - 0.5) < 0.04
    # Box vs click only on point-prompted initial frames, p 0.5 there.
    assert not p.use_box[~(p.is_init_cond & pt[:, None])].any()
    assert abs(p.use_box[p.is_init_cond & pt[:, None]].mean() - 0.5) < 0.04
    # Mask starts get no corrections; point starts correct the init frames plus 0-1 more.
    assert not p.correct[~pt].any()
    assert (p.correct[pt] >= p.is_init_cond[pt]).all()
    n_corr = p.correct.sum(1)
    one = pt & (n_init == 1)
    assert set(n_corr[one]) == {1, 2} and abs((n_corr[one] == 2).mean() - 0.5) < 0.06
    assert (n_corr[pt & (n_init == 2)] == 2).all()
    np.testing.assert_array_equal(p.is_cond, p.is_init_cond | p.correct)
    # Extra frames are spread over frames 1..T-1.
    extra = p.correct & ~p.is_init_cond
    assert (extra[:, 1:].sum(0) > 0.15 * extra.sum() / 4).all()


def test_processing_order_puts_init_frames_first():
    p = _schedules(5)
    for i in range(200):
        order = p.order[i]
        n = p.is_init_cond[i].sum()
        np.testing.assert_array_equal(np.sort(order), np.arange(5))
        np.testing.assert_array_equal(order[:n], np.flatnonzero(p.is_init_cond[i]))
        np.testing.assert_array_equal(order[n:], np.flatnonzero(~p.is_init_cond[i]))


def test_images_always_start_from_points_and_correct_frame_0():
    p = _schedules(1)
    assert not p.use_mask_input.any()
    assert p.is_init_cond.all() and p.correct.all() and p.is_cond.all()
    assert abs(p.use_box.mean() - 0.5) < 0.04


def _blobs(seed, shape, size=32):
    rng = np.random.default_rng(seed)
    lo = rng.integers(0, size - 8, (*shape, 2))
    yy, xx = np.mgrid[:size, :size]
    m = (
        (yy >= lo[..., :1, None])
        & (yy < lo[..., :1, None] + 8)
        & (xx >= lo[..., 1:, None])
        & (xx < lo[..., 1:, None] + 8)
    )
    return m & (rng.uniform(size=shape) > 0.2)[..., None, None]  # some objects absent


def test_initial_prompts_layout_and_locations():
    gt = _blobs(0, (2, 3, 2))  # B, T, O
    n = 300
    plans = jax.jit(jax.vmap(lambda k: ps.sample_initial_prompts(k, gt, CFG)))(_keys(n, 1))
    coords, labels = np.asarray(plans.point_coords), np.asarray(plans.point_labels)
    assert coords.shape == (n, 2, 3, 2, ps.num_point_slots(CFG), 2)
    assert (labels[..., ps.NUM_INIT_SLOTS :] == ps.PAD_LABEL).all()  # corrections come later
    prompted = np.asarray(plans.is_init_cond & ~plans.use_mask_input[:, None])
    box = np.asarray(plans.use_box)
    seen = {"none": 0, "box": 0, "click": 0, "empty click": 0}
    for i, b, t, o in np.ndindex(n, 2, 3, 2):
        lab, xy, m = labels[i, b, t, o], coords[i, b, t, o], gt[b, t, o]
        kind = (
            "none"
            if not prompted[i, t]
            else "box"
            if box[i, t]
            else ("click" if m.any() else "empty click")
        )
        seen[kind] += 1
        if kind == "none":
            assert (lab == ps.PAD_LABEL).all() and (xy == 0).all()
        elif kind == "box":
            assert list(lab[:2]) == [2, 3]
            if m.any():  # corners within the noise of the extent
                ys, xs = np.nonzero(m)
                ext = np.array([xs.min(), ys.min(), xs.max(), ys.max()], float)
                assert np.abs(xy[:2].reshape(4) - ext).max() <= 0.1 * 7 + 1e-5
        else:
            assert lab[1] == ps.PAD_LABEL
            x, y = xy[0].astype(int)
            assert lab[0] == int(m.any()) and m[y, x] == m.any()  # inside GT; background if empty
    assert min(seen.values()) > 20, seen


def test_deterministic_and_compiled_once():
    traces = []

    def sample(key, gt):
        traces.append(1)
        return ps.sample_initial_prompts(key, gt, CFG)

    fn = jax.jit(sample)
    gt = _blobs(1, (1, 4, 2))
    a = fn(jax.random.key(7), gt)
    b = fn(jax.random.key(7), gt)
    c = fn(jax.random.key(8), _blobs(2, (1, 4, 2)))
    jax.tree.map(np.testing.assert_array_equal, a, b)
    assert len(traces) == 1
    different = [not np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(c))]
    assert any(different)


def _toy_predict(size):
    """Disks of radius 3 around positive clicks, minus disks around negative ones."""
    yy, xx = np.mgrid[:size, :size]

    def predict(coords, labels, carry):
        d2 = (xx - coords[..., 0, None, None]) ** 2 + (yy - coords[..., 1, None, None]) ** 2
        near = d2[..., :, :, :] <= 9  # [*n, NP, H, W]
        pos = jnp.any(near & (labels == 1)[..., None, None], axis=-3)
        neg = jnp.any(near & (labels == 0)[..., None, None], axis=-3)
        logits = jnp.where(pos & ~neg, 5.0, -5.0)
        return logits, carry + 1, logits

    return predict


@pytest.mark.parametrize("prob_from_gt", [0.0, 1.0])
def test_correction_rounds_click_in_errors(prob_from_gt):
    cfg = ps.default_config()
    cfg.prob_to_sample_from_gt = prob_from_gt
    gt = _blobs(3, (6,)) | _blobs(4, (6,))  # 6 objects
    npt = ps.num_point_slots(cfg)
    coords0 = jnp.zeros((6, npt, 2))
    labels0 = jnp.full((6, npt), ps.PAD_LABEL)
    first = jnp.full(gt.shape, -5.0)  # the frame's prediction before corrections: empty
    run = jax.jit(
        lambda k: ps.run_correction_rounds(
            k, _toy_predict(32), coords0, labels0, gt, first, jnp.int32(0), cfg
        )
    )
    coords, labels, carry, outs = jax.tree.map(np.asarray, run(jax.random.key(5)))
    assert carry == 7 and outs.shape == (7, 6, 32, 32)
    assert (labels[:, : ps.NUM_INIT_SLOTS] == ps.PAD_LABEL).all()
    preds = np.concatenate([np.asarray(first)[None], outs]) > 0
    positives = negatives = 0
    for k, o in np.ndindex(7, 6):
        x, y = coords[o, ps.NUM_INIT_SLOTS + k].astype(int)
        lab = labels[o, ps.NUM_INIT_SLOTS + k]
        prev = np.zeros_like(gt[o]) if prob_from_gt else preds[k, o]
        fn, fp = gt[o] & ~prev, prev & ~gt[o]
        if fn.any() or fp.any():
            assert (fn | fp)[y, x] and lab == int(fn[y, x])
        else:  # exact: a negative background click
            assert lab == 0 and not gt[o, y, x]
        positives, negatives = positives + (lab == 1), negatives + (lab == 0)
    assert positives > 10 and (negatives > 3 or prob_from_gt)


def test_prob_from_gt_frequency():
    gt = _rect(16, 4, 8, 4, 8)
    # The prediction is exact, so an error click is a negative one; a GT click is positive.
    sample = jax.jit(
        jax.vmap(lambda k: ps.sample_correction_click(k, gt, jnp.where(gt, 3.0, -3.0), 0.1))
    )
    _, lab = sample(_keys(DRAWS, 3))
    assert abs(np.asarray(lab).mean() - 0.1) < 0.025


def test_bad_config_names_the_field():
    cfg = ps.default_config()
    cfg.num_frames_to_correct = 1
    with pytest.raises(EtamError, match="num_frames_to_correct"):
        ps.validate_config(cfg)
    cfg = ps.default_config()
    cfg.prob_to_use_box_input = 1.5
    with pytest.raises(EtamError, match="prob_to_use_box_input"):
        ps.validate_config(cfg)
    ps.validate_config(ps.default_config())
