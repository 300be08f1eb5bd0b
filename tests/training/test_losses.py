"""losses.py against a separately written float64 numpy loop (SAM 2's loss_fns semantics)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from etam_jax.errors import EtamError
from etam_jax.training import losses


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _bce(x, t):
    p = _sigmoid(x)
    return -(t * np.log(p) + (1 - t) * np.log(1 - p))


def _one_mask(x, t, pred_iou, cfg):
    """(focal, dice, iou loss) of one predicted mask, float64, straight from the formulas."""
    p = _sigmoid(x)
    p_t = p * t + (1 - p) * (1 - t)
    alpha_t = cfg.focal_alpha * t + (1 - cfg.focal_alpha) * (1 - t)
    focal = np.mean(alpha_t * _bce(x, t) * (1 - p_t) ** cfg.focal_gamma)
    dice = 1 - (2 * np.sum(p * t) + 1) / (np.sum(p) + np.sum(t) + 1)
    pred, gt = x > 0, t > 0
    true_iou = np.sum(pred & gt) / max(np.sum(pred | gt), 1)
    err = pred_iou - true_iou
    return focal, dice, (abs(err) if cfg.iou_use_l1_loss else err**2)


def reference(logits, ious, obj, targets, valid, num_objects, cfg):
    """Loop over every prediction row; returns (total, components) in float64."""
    logits, ious, obj = (np.asarray(a, np.float64) for a in (logits, ious, obj))
    lead, m = logits.shape[:-3], logits.shape[-3]
    targets = np.broadcast_to(np.asarray(targets, np.float64), (*lead, *logits.shape[-2:]))
    valid = np.broadcast_to(valid, lead)
    sums = dict.fromkeys(losses.LOSS_KEYS, 0.0)
    for idx in np.ndindex(*lead):
        if not valid[idx]:
            continue
        t = targets[idx]
        present = float(t.any())
        per = np.array([_one_mask(logits[idx][k], t, ious[idx][k], cfg) for k in range(m)])
        best = int(np.argmin(cfg.weights.loss_mask * per[:, 0] + cfg.weights.loss_dice * per[:, 1]))
        iou = per[:, 2].mean() if (m > 1 and cfg.supervise_all_iou) else per[best, 2]
        sums["loss_mask"] += present * per[best, 0]
        sums["loss_dice"] += present * per[best, 1]
        sums["loss_iou"] += present * iou
        sums["loss_class"] += _bce(obj[idx], present)  # gamma 0, no alpha: BCE
    comps = {k: v / max(num_objects, 1) for k, v in sums.items()}
    return sum(cfg.weights[k] * comps[k] for k in comps), comps


def _inputs(seed, lead, m, size=16):
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 2.5, (*lead, m, size, size)).astype(np.float32)
    ious = rng.uniform(0, 1, (*lead, m)).astype(np.float32)
    obj = rng.normal(0, 2, lead).astype(np.float32)
    # Boxes of random extent; about a third of the rows absent (empty target).
    yy, xx = np.mgrid[:size, :size]
    lo = rng.integers(0, size // 2, (*lead, 2))
    hi = lo + rng.integers(1, size // 2, (*lead, 2))
    targets = (
        (yy >= lo[..., :1, None])
        & (yy < hi[..., :1, None])
        & (xx >= lo[..., 1:, None])
        & (xx < hi[..., 1:, None])
    )
    targets &= (rng.uniform(size=lead) > 0.33)[..., None, None]
    # Some predictions copy the target (IoU 1, confident) so good masks appear too.
    good = rng.uniform(size=(*lead, m)) < 0.2
    logits = np.where(good[..., None, None], np.where(targets[..., None, :, :], 4.0, -4.0), logits)
    return logits, ious, obj, targets, rng


def _check(got, want):
    total, comps = got
    want_total, want_comps = want
    for k in losses.LOSS_KEYS:
        np.testing.assert_allclose(float(comps[k]), want_comps[k], rtol=2e-5, atol=1e-6, err_msg=k)
    np.testing.assert_allclose(float(total), want_total, rtol=2e-5, atol=1e-6)


@pytest.mark.parametrize("m", [1, 3])
def test_matches_numpy_with_padding_and_absent_objects(m):
    lead = (2, 3, 2, 3)  # clips, frames, prediction steps, objects
    logits, ious, obj, targets, rng = _inputs(0, lead, m)
    obj_valid = np.array([[True, True, False], [True, False, False]])  # padded objects
    frame_valid = np.array([[True, True, True], [True, True, False]])  # a padded frame
    step_valid = np.array([True, True, False])[:, None] | (rng.uniform(size=(3, 2)) < 0.5)
    valid = obj_valid[:, None, None] & frame_valid[:, :, None, None] & step_valid[None, :, :, None]
    got = jax.jit(losses.multistep_losses)(logits, ious, obj, targets, valid, obj_valid.sum())
    want = reference(logits, ious, obj, targets, valid, obj_valid.sum(), losses.default_config())
    _check(got, want)
    assert want[1]["loss_mask"] > 0 and want[1]["loss_class"] > 0


def test_variants_best_mask_iou_mse_and_broadcast_target():
    cfg = losses.default_config()
    cfg.supervise_all_iou = False
    cfg.iou_use_l1_loss = False
    cfg.weights.loss_dice = 3.0
    cfg.weights.loss_mask = 7.0
    lead = (2, 4, 3)  # frames, steps, objects; the target is shared by the steps
    logits, ious, obj, targets, _ = _inputs(1, lead, 3)
    target = targets[:, :1]  # [T, 1, O, H, W] broadcast over steps
    valid = np.ones(lead, bool)
    got = jax.jit(lambda *a: losses.multistep_losses(*a, cfg=cfg))(
        logits, ious, obj, target, valid, 3
    )
    _check(got, reference(logits, ious, obj, target, valid, 3, cfg))


def test_zero_objects_clamped_and_bf16_logits():
    logits, ious, obj, targets, _ = _inputs(2, (2, 2), 3)
    valid = np.ones((2, 2), bool)
    got = jax.jit(losses.multistep_losses)(
        jnp.asarray(logits, jnp.bfloat16), ious, obj[..., None], targets, valid, 0
    )
    want = reference(
        np.asarray(jnp.asarray(logits, jnp.bfloat16), np.float32),
        ious,
        obj,
        targets,
        valid,
        1,
        losses.default_config(),
    )
    _check(got, want)


def test_extreme_logits_finite_loss_and_grads():
    logits = np.full((2, 3, 8, 8), 200.0, np.float32) * np.sign(
        np.random.default_rng(3).normal(size=(2, 3, 8, 8))
    ).astype(np.float32)
    targets = np.zeros((2, 8, 8), bool)
    targets[0, 2:5, 2:5] = True

    def total(x):
        return losses.multistep_losses(
            x,
            jnp.ones((2, 3)),
            jnp.array([300.0, -300.0]),
            targets,
            jnp.ones(2, bool),
            2,
        )[0]

    value, grad = jax.jit(jax.value_and_grad(total))(logits)
    assert np.isfinite(value) and np.all(np.isfinite(grad))


def test_unknown_weight_key_names_it():
    cfg = losses.default_config()
    cfg.weights.loss_typo = 1.0
    with pytest.raises(EtamError, match="loss.weights.loss_typo"):
        losses.multistep_losses(*_inputs(4, (1,), 1)[:4], np.ones(1, bool), 1, cfg)


def test_only_best_mask_gets_mask_gradients_iou_on_all():
    logits, ious, obj, targets, _ = _inputs(5, (4,), 3)
    targets[:, 2:10, 3:12] = True  # every object present, so every row trains its masks
    valid = np.ones(4, bool)

    def comps(x, iou):
        return losses.multistep_losses(x, iou, obj, targets, valid, 4)[1]

    grad_mask = jax.jit(jax.grad(lambda x: comps(x, ious)["loss_mask"]))(logits)
    grad_iou = jax.jit(jax.grad(lambda i: comps(logits, i)["loss_iou"]))(ious)
    cfg = losses.default_config()
    for row in range(4):
        per = np.array([_one_mask(logits[row, k], 1.0 * targets[row], 0.0, cfg) for k in range(3)])
        best = int(np.argmin(20 * per[:, 0] + per[:, 1]))
        touched = np.abs(np.asarray(grad_mask[row])).sum(axis=(-2, -1)) > 0
        np.testing.assert_array_equal(touched, np.arange(3) == best)
    assert (np.asarray(grad_iou) != 0).all()  # supervise_all_iou: every mask's IoU trains
