"""clip_forward.clip_loss with a fixed prompt plan against an independent path:
the parity-tested inference pieces (sam_heads, memory bank, memory encoder) in
training mode (sigmoid memories, every conditioning pointer read, float32
memories) and a NumPy port of SAM 2's multi-step losses. The comparisons turn
the memory attention's training dropout off; a last test checks it is on."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from etam_jax.models import memory_bank as mb
from etam_jax.models.image_normalization import IMAGENET_MEAN, IMAGENET_STD
from etam_jax.models.memory_conditioning import condition_on_bank
from etam_jax.models.resize import resize_bilinear
from etam_jax.models.sam_heads import forward_sam_heads, use_mask_as_output
from etam_jax.training import prompt_simulation as ps
from etam_jax.training.clip_forward import clip_loss
from tests.training import tiny_model

B, T, O, S = 2, 3, 2, tiny_model.SIZE
NP = ps.NUM_INIT_SLOTS  # no correction slots
CFG = tiny_model.train_config(corrections=0)
WEIGHTS = {"loss_mask": 20.0, "loss_dice": 1.0, "loss_iou": 1.0, "loss_class": 1.0}


def _batch():
    rng = np.random.default_rng(0)
    masks = np.zeros((B, T, O, S, S), bool)
    for b in range(B):
        for t in range(T):
            masks[b, t, 0, 8 + 3 * t : 30 + b, 10 : 40 - 2 * t] = True
            masks[b, t, 1, 36 : 58 - t, 20 + 4 * b : 50] = True
    masks[0, 2, 0] = False  # an object absent from a frame: only its score is trained
    obj_valid = np.array([[True, True], [True, False]])  # a padded object
    frame_valid = np.array([[True, True, True], [True, True, False]])  # a padded frame
    frames = rng.integers(0, 256, (B, T, S, S, 3), dtype=np.uint8)
    return {
        "frames": frames,
        "masks": masks,
        "obj_valid": obj_valid,
        "frame_valid": frame_valid,
    }


def _box(mask):
    ys, xs = np.nonzero(mask)
    return [[xs.min() + 1.0, ys.min() - 1.0], [xs.max() - 2.0, ys.max() + 1.0]], [2, 3]


def _click(mask):
    ys, xs = np.nonzero(mask)
    return [[float(xs[len(xs) // 2]), float(ys[len(ys) // 2])], [0.0, 0.0]], [1, -1]


def _plan(masks, init, use_mask, box_frames, order):
    coords = np.zeros((B, T, O, NP, 2), np.float32)
    labels = np.full((B, T, O, NP), -1, np.int32)
    for b, t, o in np.ndindex(B, T, O):
        if init[t] and not use_mask:
            xy, lab = (_box if t in box_frames else _click)(masks[b, t, o])
            coords[b, t, o], labels[b, t, o] = xy, lab
    init = np.array(init)
    return ps.PromptPlan(
        use_mask_input=np.array(use_mask),
        use_box=np.array([t in box_frames for t in range(T)]) & init & (not use_mask),
        is_init_cond=init,
        correct=np.zeros(T, bool),
        is_cond=init,
        order=np.array(order, np.int32),
        point_coords=coords,
        point_labels=labels,
    )


PLANS = {
    # GT masks on frames 0 and 2; frame 1 reads both memories and both pointers
    # (frame 2's is in the future: training reads it).
    "mask_0_2": {
        "init": [True, False, True],
        "use_mask": True,
        "box_frames": (),
        "order": [0, 2, 1],
    },
    # A box on frame 0, a click on frame 1 (multimask), frame 2 tracked.
    "box_click": {
        "init": [True, True, False],
        "use_mask": False,
        "box_frames": (0,),
        "order": [0, 1, 2],
    },
}


# --- the independent path ---------------------------------------------------


def _rows(x):
    """One clip's ``[1, ...]`` features broadcast to its ``O`` object rows."""
    return jnp.broadcast_to(x, (O,) + x.shape[1:])


def _encode(model, image):
    out = model.forward_image(image)
    return out["vision_features"], out["vision_pos_enc"]


def _mask_prompt(model, raw, gt):
    """SAM2Base._use_mask_as_output: the loss sees the exact +-10 logits (one mask)."""
    out = use_mask_as_output(model, _rows(raw), gt)
    return (
        out.high_res_masks,
        out.ious,
        out.high_res_masks,
        out.obj_ptr,
        out.object_score_logits,
    )


def _heads(model, features, coords, labels, multimask):
    points = None if coords is None else (coords, labels)
    out = forward_sam_heads(model, features, points, None, multimask)
    multi = resize_bilinear(out.low_res_multimasks, (S, S))
    return multi, out.ious, out.high_res_masks, out.obj_ptr, out.object_score_logits


def _points(model, raw, coords, labels, multimask):
    return _heads(model, model.add_no_memory(_rows(raw)), coords, labels, multimask)


def _tracked(model, bank, raw, pos, t):
    """A frame without prompts conditioned on memory (every conditioning pointer read)."""
    features = condition_on_bank(
        model, bank, _rows(raw), _rows(pos), t, T, pointers_past_only=False
    )
    return _heads(model, features, None, None, True)  # no points: the official padding


def _memorise(model, bank, raw, high_res, ptr, t, cond):
    """The memory of the final mask through a sigmoid (training never binarises)."""
    mem = model.encode_new_memory(_rows(raw), high_res, jnp.zeros((O,), bool))
    mem = mem["vision_features"].reshape(O, -1, model.memory_encoder.out_dim)
    write = jnp.full((O,), cond)
    bank = mb.write_cond(bank, mem, ptr, t, write)
    return mb.write_recent(bank, mem, ptr, t, ~write)


@functools.cache
def _jitted(name):
    graphdef, params = tiny_model.graph_and_params()
    fn = {
        "encode": _encode,
        "mask": _mask_prompt,
        "points": _points,
        "tracked": _tracked,
        "memorise": _memorise,
    }[name]
    static = ("multimask",) if name == "points" else ()
    jitted = jax.jit(lambda p, *a, **k: fn(nnx.merge(graphdef, p), *a, **k), static_argnames=static)
    return functools.partial(jitted, params)


def _normalise(frames):
    return ((frames / np.float32(255.0) - IMAGENET_MEAN) / IMAGENET_STD)[None].astype(np.float32)


def _clip_outputs(batch, plan, b):
    """Per frame of clip ``b``: (high-res masks [O, M, S, S], ious [O, M], score [O])."""
    feats = [_jitted("encode")(_normalise(batch["frames"][b, t])) for t in range(T)]
    bank = mb.empty_bank(O, 2, 15, (S // 16) ** 2, 64, 256, jnp.float32)
    outputs = {}
    for t in plan.order.tolist():
        raw, pos = feats[t]
        gt = batch["masks"][b, t][:, None].astype(np.float32)
        if plan.is_init_cond[t] and plan.use_mask_input:
            out = _jitted("mask")(raw, gt)
        elif plan.is_init_cond[t]:
            # The official prompt: the real points only (a box, or one click).
            labels = plan.point_labels[b, t]
            real = int((labels >= 0).sum(-1).max())
            assert (labels[:, :real] >= 0).all() and (labels[:, real:] < 0).all()
            out = _jitted("points")(
                raw, plan.point_coords[b, t][:, :real], labels[:, :real], multimask=real <= 1
            )
        else:
            out = _jitted("tracked")(bank, raw, pos, t)
        multi, ious, high_res, ptr, score = out
        bank = _jitted("memorise")(bank, raw, high_res, ptr, t, bool(plan.is_cond[t]))
        outputs[t] = (np.asarray(multi), np.asarray(ious), np.asarray(score)[:, 0])
    return outputs


# --- SAM 2's losses in NumPy (training/loss_fns.py, SAM 2.1 weights) ---------


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _focal(logits, gt, alpha=0.25, gamma=2.0):
    p = _sigmoid(logits)
    ce = np.logaddexp(0.0, logits) - logits * gt
    p_t = p * gt + (1 - p) * (1 - gt)
    return ((alpha * gt + (1 - alpha) * (1 - gt)) * ce * (1 - p_t) ** gamma).mean((-2, -1))


def _dice(logits, gt):
    p = _sigmoid(logits)
    return 1 - (2 * (p * gt).sum((-2, -1)) + 1) / (p.sum((-2, -1)) + gt.sum((-2, -1)) + 1)


def _iou(logits, gt):
    pred, g = logits > 0, gt > 0
    return (pred & g).sum((-2, -1)) / np.maximum((pred | g).sum((-2, -1)), 1)


def _object_losses(multi, ious, score, gt):
    """One object, one prediction step: dict of the four unweighted losses."""
    multi, ious, gt = (
        multi.astype(np.float64),
        ious.astype(np.float64),
        gt.astype(np.float64),
    )
    focal, dice = _focal(multi, gt), _dice(multi, gt)
    best = np.argmin(20 * focal + dice)  # best of the multimask outputs (or the one mask)
    present = float(gt.any())
    bce = np.logaddexp(0.0, score) - score * present
    return {
        "loss_mask": focal[best] * present,
        "loss_dice": dice[best] * present,
        "loss_iou": np.abs(ious - _iou(multi, gt)).mean() * present,
        "loss_class": bce,
    }


def reference_losses(batch, plan):
    total = dict.fromkeys(WEIGHTS, 0.0)
    num_objects = batch["obj_valid"].sum()
    for b in range(B):
        for t, (multi, ious, score) in _clip_outputs(batch, plan, b).items():
            for o in range(O):
                if batch["obj_valid"][b, o] and batch["frame_valid"][b, t]:
                    parts = _object_losses(multi[o], ious[o], score[o], batch["masks"][b, t, o])
                    for k, v in parts.items():
                        total[k] += v / num_objects
    return sum(WEIGHTS[k] * v for k, v in total.items()), total


def _clip_loss_fn(dropout: float | None):
    """Jitted ``(batch, plan, key) -> (loss, parts)`` (``dropout`` None: the official 0.1)."""
    graph, params = tiny_model.graph_and_params()
    graph = graph if dropout is None else tiny_model.graphdef(dropout)

    @jax.jit
    def run(params, batch, plan, key):
        return clip_loss(nnx.merge(graph, params), batch, key, CFG, plan)

    return functools.partial(run, params)


@pytest.fixture(scope="module")
def ours():
    run = _clip_loss_fn(dropout=0.0)
    return lambda batch, plan: run(batch, plan, jax.random.key(0))


@pytest.mark.parametrize("name", sorted(PLANS))
def test_clip_loss_matches_independent_path(ours, name):
    batch = _batch()
    plan = _plan(batch["masks"], **PLANS[name])
    loss, parts = ours(batch, plan)
    want_loss, want = reference_losses(batch, plan)
    assert float(parts["num_objects"]) == 3
    for k, v in want.items():
        np.testing.assert_allclose(float(parts[k]), v, rtol=2e-5, atol=1e-7, err_msg=k)
    np.testing.assert_allclose(float(loss), want_loss, rtol=2e-5)


def test_training_applies_memory_attention_dropout():
    """Tracked frames go through the memory attention in training mode (official
    ``train()``: dropout 0.1): the loss depends on the step key, not on the call."""
    batch = _batch()
    plan = _plan(batch["masks"], **PLANS[sorted(PLANS)[0]])
    run = _clip_loss_fn(dropout=None)
    k0, k1 = jax.random.key(0), jax.random.key(1)
    a, b, c = (float(run(batch, plan, k)[0]) for k in (k0, k0, k1))
    deterministic = float(_clip_loss_fn(dropout=0.0)(batch, plan, k0)[0])
    assert a == b
    assert a != c and a != deterministic
    np.testing.assert_allclose(a, deterministic, rtol=0.2)  # dropout perturbs, not replaces
