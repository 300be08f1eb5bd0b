"""SAM heads for training: the multimask choice made per row inside jit.

At inference the number of prompt points is known when tracing, so
``sam_heads.forward_sam_heads`` takes ``multimask_output`` as a static flag.
In training the prompt plan is drawn inside the step: whether a frame's
prediction is multimask (``SAM2Base._use_multimask``: 0 or 1 points) depends
on traced data. The mask decoder computes every mask token anyway
(``MaskDecoder.predict_masks``); here the choice between the three multimask
outputs and the single one is a ``jnp.where`` per row.

For the loss the outputs always have ``M = 3`` masks: a single-mask row
repeats its mask three times, which gives exactly the losses of the one mask
(the best-of-three choice picks it, and the mean IoU error equals its error).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
from flax import struct

from etam_jax.models.sam_heads import NO_OBJ_SCORE, _gate_pointer, _resize

if TYPE_CHECKING:
    from etam_jax.models.efficienttam import EfficientTAM

MULTIMASK_MAX_POINTS = 1  # multimask_max_pt_num in every official config


@struct.dataclass
class TrainHeadOutputs:
    """SAM head outputs of ``N`` rows with ``M = 3`` masks each.

    Attributes:
      multimask_logits: ``[N, 3, 4g, 4g]`` (a single-mask row repeated).
      ious: ``[N, 3]`` predicted IoUs (likewise).
      low_res_masks: ``[N, 1, 4g, 4g]`` the chosen mask.
      obj_ptr: ``[N, 256]``.
      object_score_logits: ``[N, 1]``.
    """

    multimask_logits: jax.Array
    ious: jax.Array
    low_res_masks: jax.Array
    obj_ptr: jax.Array
    object_score_logits: jax.Array

    def high_res_multimasks(self, size: int) -> jax.Array:
        """``[N, 3, S, S]``: as ``high_res_multimasks`` of ``_forward_sam_heads``."""
        return _resize(self.multimask_logits, size)

    def high_res_masks(self, size: int) -> jax.Array:
        """``[N, 1, S, S]`` the chosen mask at the image size."""
        return _resize(self.low_res_masks, size)


def multimask_rows(labels: jax.Array) -> jax.Array:
    """``[N]`` bool: rows with at most one real point (``_use_multimask``; padding is -1)."""
    return jnp.sum(labels >= 0, axis=-1) <= MULTIMASK_MAX_POINTS


def official_prompt_tokens(labels: jax.Array) -> jax.Array:
    """``[N, NP + 1]`` bool: which sparse tokens of a padded row the official model has.

    The prompt encoder appends one padding point to ``labels`` (no box input).
    Officially a row with real points has them plus that one padding token; a
    row without points (a tracked frame) has two, ``_forward_sam_heads``'s own
    padding point and the appended one. The other ``-1`` slots exist only
    for static shapes and are masked out of the decoder's attention.
    """
    pad = jnp.full(labels.shape[:-1] + (1,), -1, labels.dtype)
    is_pad = jnp.concatenate([labels, pad], axis=-1) < 0
    real = jnp.sum(~is_pad, axis=-1, keepdims=True)
    pad_rank = jnp.cumsum(is_pad, axis=-1) - 1  # 0-based among the padding tokens
    return ~is_pad | (pad_rank < jnp.where(real > 0, 1, 2))


def _select(multimask: jax.Array, multi: jax.Array, single: jax.Array) -> jax.Array:
    """Per row: the 3 multimask entries, or the single one repeated 3 times."""
    cond = multimask.reshape((-1,) + (1,) * (multi.ndim - 1))
    return jnp.where(cond, multi, jnp.repeat(single, multi.shape[1], axis=1))


def train_sam_heads(
    model: EfficientTAM,
    features: jax.Array,
    coords: jax.Array,
    labels: jax.Array,
    mask_inputs: jax.Array | None,
) -> TrainHeadOutputs:
    """As ``_forward_sam_heads`` with the multimask flag decided per row.

    Args:
      model: the EfficientTAM module (built without the stability fallback).
      features: ``[N, g, g, 256]`` memory-conditioned (or no-memory) features.
      coords: ``[N, NP, 2]`` points in input-image pixels; ``labels`` ``[N, NP]``
        with -1 padding; padding beyond the official count (`official_prompt_tokens`)
        is masked out of the decoder, so each row gets the official result for
        its own number of points.
      labels: see ``coords``.
      mask_inputs: ``[N, 1, 4g, 4g]`` mask logits fed back to the prompt encoder
        (correction rounds), or None.
    """
    prompts = model.sam_prompt_encoder
    dense_in = None if mask_inputs is None else jnp.moveaxis(mask_inputs, 1, -1)
    sparse, dense = prompts(points=(coords, labels), boxes=None, masks=dense_in)
    decoder = model.sam_mask_decoder
    masks, ious, tokens, score = decoder.predict_masks(
        features,
        prompts.get_dense_pe(),
        sparse,
        dense,
        False,
        None,
        sparse_mask=official_prompt_tokens(labels),
    )
    appearing = score > 0  # [N, 1]
    masks = jnp.where(appearing[:, :, None, None], masks, NO_OBJ_SCORE).astype(jnp.float32)
    multimask = multimask_rows(labels)
    multi_masks = _select(multimask, masks[:, 1:], masks[:, :1])
    multi_ious = _select(multimask, ious[:, 1:], ious[:, :1])
    best = jnp.where(multimask, jnp.argmax(ious[:, 1:], axis=-1), 0)  # first max, as torch
    low_res = jnp.take_along_axis(multi_masks, best[:, None, None, None], axis=1)
    token_index = best + 1 if decoder.use_multimask_token_for_obj_ptr else jnp.zeros_like(best)
    token_index = jnp.where(multimask, token_index, 0)
    token = jnp.take_along_axis(tokens, token_index[:, None, None], axis=1)[:, 0]
    obj_ptr = _gate_pointer(model, model.obj_ptr_proj(token), appearing)
    return TrainHeadOutputs(
        multi_masks,
        multi_ious.astype(jnp.float32),
        low_res,
        obj_ptr.astype(jnp.float32),
        score.astype(jnp.float32),
    )
