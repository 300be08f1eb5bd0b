"""The training forward pass over a batch of clips, with simulated prompts, to the loss.

A port of ``SAM2Train.forward`` (facebookresearch/sam2 ``training/model/sam2.py``):
encode every frame, draw the prompting plan (`prompt_simulation`), then visit
the frames in the plan's order -- initial conditioning frames first (no
memory), the others in time order conditioned on the memory bank -- predict,
add correction clicks on the frames to correct, encode the final mask into
memory, and accumulate SAM 2's multi-step losses (`losses.multistep_losses`).

Static shapes: objects of every clip are rows ``N = B * O`` of one batch; the
memory bank has ``num_cond`` conditioning slots (the most conditioning frames a
plan can make) and a ring sized for the clip; the frame loop is a
``lax.scan`` over the processing order and the plan's per-frame flags choose
branches with ``lax.cond`` (they are shared by the batch, as in the official
trainer), so a conditioning frame never pays for memory attention and a frame
without corrections never runs the correction rounds.

Training semantics that differ from inference (``self.training`` in the
official code): pointers of all conditioning frames are read (not only past
ones), masks of clicked frames go through a sigmoid (not binarised) into the
memory encoder, memories stay in the compute dtype and carry gradients.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from etam_jax.models import memory_bank as mb
from etam_jax.models.efficienttam import EfficientTAM
from etam_jax.models.image_normalization import normalize_uint8
from etam_jax.models.memory_conditioning import condition_on_bank
from etam_jax.models.sam_heads import (
    MASK_OUT_BIAS,
    MASK_OUT_SCALE,
    RowHeadOutputs,
    sam_heads_per_row,
    use_mask_as_output,
)
from etam_jax.training import losses
from etam_jax.training import prompt_simulation as ps


def bank_sizes(num_frames: int, model: EfficientTAM, prompts: ml_collections.ConfigDict):
    """``(num_cond, num_recent)`` slots that hold every memory a clip can produce."""
    num_cond = min(num_frames, max(prompts.num_init_cond_frames, prompts.num_frames_to_correct))
    lookback = max(model.num_maskmem, model.max_obj_ptrs_in_encoder) - 1
    return max(num_cond, 1), max(min(lookback, num_frames), 1)


def _rows(x: jax.Array, objects: int) -> jax.Array:
    """Per-clip ``[B, ...]`` -> per-object rows ``[B * O, ...]``."""
    return jnp.repeat(x, objects, axis=0)


def _mask_branch(model, raw, gt) -> RowHeadOutputs:
    """``_use_mask_as_output``: the GT mask is the output (frames prompted with a mask)."""
    out = use_mask_as_output(model, raw, gt[:, None].astype(jnp.float32))
    three = jnp.repeat(out.low_res_multimasks, 3, axis=1)
    return RowHeadOutputs(
        three,
        jnp.repeat(out.ious, 3, axis=1),
        out.low_res_masks,
        out.obj_ptr.astype(jnp.float32),
        out.object_score_logits.astype(jnp.float32),
    )


class _Frame:
    """What one step of the frame loop reads (all rows, frame ``t``)."""

    def __init__(self, batch, feats, pos, plan, t):
        objects = batch["masks"].shape[2]
        self.t = t
        self.raw = _rows(feats[:, t], objects)
        self.pos = _rows(pos[:, t], objects)
        self.gt = batch["masks"][:, t].reshape((-1,) + batch["masks"].shape[-2:])
        self.coords = plan.point_coords[:, t].reshape((-1,) + plan.point_coords.shape[-2:])
        self.labels = plan.point_labels[:, t].reshape((-1, plan.point_labels.shape[-1]))
        valid = batch["obj_valid"] & batch["frame_valid"][:, t, None]
        self.valid = valid.reshape(-1)
        self.mask_prompt = plan.mask_prompt[t]


def _high_res(model, out: RowHeadOutputs, frame: _Frame, multi: bool) -> jax.Array:
    """Image-size logits ``[N, 3 or 1, S, S]``. A GT-mask prompt's output is the exact
    +-10 mask (``_use_mask_as_output``'s ``high_res_masks``, which the loss and the
    memory encoder see), not the upsampled low-res mask."""
    size = model.image_size
    resized = out.high_res_multimasks(size) if multi else out.high_res_masks(size)
    exact = frame.gt[:, None].astype(resized.dtype) * MASK_OUT_SCALE + MASK_OUT_BIAS
    return jnp.where(frame.mask_prompt, jnp.broadcast_to(exact, resized.shape), resized)


def _loss_terms(model, out: RowHeadOutputs, frame: _Frame, num_objects, cfg):
    """Unweighted loss components (dict of scalars) of one prediction step."""
    _, parts = losses.multistep_losses(
        _high_res(model, out, frame, multi=True),
        out.ious,
        out.object_score_logits,
        frame.gt,
        frame.valid,
        num_objects,
        cfg.loss,
    )
    return parts


def _features(model, bank, frame: _Frame, plan, num_frames, key):
    """No-memory features on initial conditioning frames, else memory attention
    (in training mode: its dropout, driven by ``key``, as the official ``train()``)."""

    def with_memory(raw):
        features = condition_on_bank(
            model,
            bank,
            raw,
            frame.pos,
            frame.t,
            num_frames,
            pointers_past_only=False,
            dropout_rng=key,
        )
        return features.astype(raw.dtype)

    def without_memory(raw):
        return model.add_no_memory(raw).astype(raw.dtype)

    if num_frames == 1:  # an image is always an initial conditioning frame
        return without_memory(frame.raw)
    return jax.lax.cond(plan.is_init_cond[frame.t], without_memory, with_memory, frame.raw)


def _corrections(model, features, frame: _Frame, first: RowHeadOutputs, key, num_objects, cfg):
    """``_iter_correct_pt_sampling``: click, predict with the last mask as input, repeat."""

    def predict(coords, labels, low_res):
        out = sam_heads_per_row(model, features, coords, labels, low_res)
        parts = _loss_terms(model, out, frame, num_objects, cfg)
        return out.high_res_masks(model.image_size)[:, 0], out.low_res_masks, (out, parts)

    _, _, _, (outs, parts) = ps.run_correction_rounds(
        key,
        predict,
        frame.coords,
        frame.labels,
        frame.gt,
        first.high_res_masks(model.image_size)[:, 0],
        first.low_res_masks,
        cfg.prompts,
    )
    last = jax.tree.map(lambda x: x[-1], outs)
    return last, {k: v.sum() for k, v in parts.items()}


def _frame_step(model, batch, feats, pos, plan, key, num_objects, cfg, bank, t):
    """Predict, correct and memorise frame ``t``; returns the bank and its losses."""
    num_frames = batch["frames"].shape[1]
    frame = _Frame(batch, feats, pos, plan, t)
    features = _features(model, bank, frame, plan, num_frames, jax.random.fold_in(key, 1))

    def from_prompt(_):
        return sam_heads_per_row(model, features, frame.coords, frame.labels, None)

    first = jax.lax.cond(
        plan.mask_prompt[t], lambda _: _mask_branch(model, frame.raw, frame.gt), from_prompt, None
    )
    parts = _loss_terms(model, first, frame, num_objects, cfg)
    if cfg.prompts.num_correction_pt_per_frame > 0:
        no_parts = jax.tree.map(jnp.zeros_like, parts)
        last, extra = jax.lax.cond(
            plan.correct[t],
            lambda: _corrections(model, features, frame, first, key, num_objects, cfg),
            lambda: (first, no_parts),
        )
        parts = {k: parts[k] + extra[k] for k in parts}
    else:
        last = first
    if num_frames > 1:  # images never read their memory: skip the memory encoder
        bank = _memorise(model, bank, frame, last, plan.is_cond[t])
    return bank, parts


def _memorise(model, bank, frame: _Frame, out: RowHeadOutputs, is_cond):
    """``_encode_new_memory`` (sigmoid of the final mask, training mode) into the bank."""
    rows = frame.raw.shape[0]
    high_res = _high_res(model, out, frame, multi=False)
    mem = model.encode_new_memory(frame.raw, high_res, jnp.zeros((rows,), bool))
    mem = mem["vision_features"]
    mem = mem.reshape(rows, -1, mem.shape[-1]).astype(bank.cond_feats.dtype)
    everyone = jnp.ones((rows,), bool)
    bank = mb.write_cond(bank, mem, out.obj_ptr, frame.t, everyone & is_cond)
    return mb.write_recent(bank, mem, out.obj_ptr, frame.t, everyone & ~is_cond)


def clip_loss(
    model: EfficientTAM,
    batch: dict[str, jax.Array],
    key: jax.Array,
    cfg: ml_collections.ConfigDict,
    plan: ps.PromptPlan | None = None,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """SAM 2's training loss of a batch of clips (images are 1-frame clips).

    Args:
      model: EfficientTAM built without the stability fallback
        (``apply_postprocessing=False``).
      batch: ``frames`` uint8 ``[B, T, S, S, 3]``, ``masks`` bool ``[B, T, O, S, S]``,
        ``obj_valid`` bool ``[B, O]``, ``frame_valid`` bool ``[B, T]``.
      key: PRNG key of this step.
      cfg: training config with ``prompts`` (`prompt_simulation.default_config`),
        ``loss`` (`losses.default_config`) and ``remat`` (bool).
      plan: the prompting plan; None draws it with `prompt_simulation.sample_initial_prompts`
        (tests pass a fixed one).

    Returns:
      ``(loss, metrics)``: the weighted total, and the unweighted components
      plus ``num_objects``.
    """
    b, t, s = batch["frames"].shape[:3]
    k_plan, k_frames = jax.random.split(key)
    if plan is None:
        plan = ps.sample_initial_prompts(k_plan, batch["masks"], cfg.prompts)
    enc = model.forward_image(normalize_uint8(batch["frames"]).reshape(b * t, s, s, 3))
    feats, pos = (
        enc[k].reshape((b, t) + enc[k].shape[1:]) for k in ("vision_features", "vision_pos_enc")
    )
    num_objects = jnp.sum(batch["obj_valid"])
    num_cond, num_recent = bank_sizes(t, model, cfg.prompts)
    rows = b * batch["masks"].shape[2]
    bank = mb.empty_bank(
        rows,
        num_cond,
        num_recent,
        feats.shape[2] * feats.shape[3],
        model.memory_encoder.out_dim,
        model.no_obj_ptr.shape[-1],
        feats.dtype,
    )

    def step(bank, xs):
        frame_t, k = xs
        return _frame_step(model, batch, feats, pos, plan, k, num_objects, cfg, bank, frame_t)

    if cfg.get("remat", False):
        step = jax.checkpoint(step)
    _, parts = jax.lax.scan(step, bank, (plan.order, jax.random.split(k_frames, t)))
    parts = {k: v.sum() for k, v in parts.items()}
    total = losses.weighted_total(parts, cfg.loss.weights)
    return total, {**parts, "num_objects": num_objects.astype(jnp.float32)}


def loss_fn(graphdef: nnx.GraphDef, cfg: ml_collections.ConfigDict):
    """``f(params, batch, key) -> (loss, metrics)`` for ``jax.value_and_grad``."""

    def f(params, batch, key):
        return clip_loss(nnx.merge(graphdef, params), batch, key, cfg)

    return f
