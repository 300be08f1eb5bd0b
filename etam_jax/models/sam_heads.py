"""SAM heads: prompts + features -> masks, IoUs, object pointer, for tracker and training.

Ports of ``sam2_base._forward_sam_heads`` and ``_use_mask_as_output``
(single feature level: EfficientTAM has no high-resolution features).
Masks are stacks ``[B, M, H, W]``; feature maps are ``[B, g, g, C]``.

Two entry points share the prompt encoding, the presence gate of the masks
and the object pointer's no-object blend:

- `forward_sam_heads`: ``multimask_output`` a static flag (inference, where
  the number of prompt points is known when tracing);
- `sam_heads_per_row`: the multimask choice (``_use_multimask``: 0 or 1
  points) made per row inside jit (training, where the prompt plan is drawn
  inside the step). The mask decoder computes every mask token anyway
  (``MaskDecoder.predict_masks``); the choice between the three multimask
  outputs and the single one is a ``jnp.where`` per row. For the loss the
  outputs always have ``M = 3`` masks: a single-mask row repeats its mask
  three times, which gives exactly the losses of the one mask (the
  best-of-three choice picks it, and the mean IoU error equals its error).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
from flax import struct

from etam_jax.models import prompt_labels
from etam_jax.models.resize import resize_bilinear

if TYPE_CHECKING:
    from etam_jax.models.efficienttam import EfficientTAM

NO_OBJ_SCORE = -1024.0  # sam2_base.NO_OBJ_SCORE
MULTIMASK_MAX_POINTS = 1  # multimask_max_pt_num in every official config
MASK_OUT_SCALE, MASK_OUT_BIAS = (
    20.0,
    -10.0,
)  # _use_mask_as_output: sigmoid(-10) ~ 4.5e-5


@struct.dataclass
class SamOutputs:
    """Outputs of the SAM heads for B objects.

    Attributes:
      low_res_multimasks: [B, M, 4g, 4g] mask logits (M = 3 multimask, else 1).
      ious: [B, M] predicted IoUs.
      low_res_masks: [B, 1, 4g, 4g] the chosen mask (highest IoU).
      high_res_masks: [B, 1, S, S] the chosen mask at the image size.
      obj_ptr: [B, 256] object pointer.
      object_score_logits: [B, 1] object presence logit.
    """

    low_res_multimasks: jax.Array
    ious: jax.Array
    low_res_masks: jax.Array
    high_res_masks: jax.Array
    obj_ptr: jax.Array
    object_score_logits: jax.Array


def _resize(masks_bmhw: jax.Array, size: int, antialias: bool = False) -> jax.Array:
    """torch ``F.interpolate(mode="bilinear", align_corners=False[, antialias])`` of a mask stack."""
    return resize_bilinear(masks_bmhw, (size, size), antialias=antialias)


def _gate_pointer(model: EfficientTAM, obj_ptr: jax.Array, appearing: jax.Array) -> jax.Array:
    """As ``_forward_sam_heads``: ``fixed_no_obj_ptr`` + ``no_obj_ptr`` for absent objects."""
    lam = appearing.astype(jnp.float32)  # [B, 1]
    return lam * obj_ptr + (1.0 - lam) * model.no_obj_ptr[...]


def _encode_prompts(model: EfficientTAM, grid: int, points, mask_inputs):
    """Sparse and dense prompt embeddings; a mask prompt resized (antialiased) to 4g if needed."""
    dense_mask = None
    if mask_inputs is not None:
        if mask_inputs.shape[-1] != 4 * grid:
            mask_inputs = _resize(mask_inputs.astype(jnp.float32), 4 * grid, antialias=True)
        dense_mask = jnp.moveaxis(mask_inputs.astype(jnp.float32), 1, -1)  # [B, 4g, 4g, 1]
    return model.sam_prompt_encoder(points=points, boxes=None, masks=dense_mask)


def _gate_masks(masks: jax.Array, score: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(appearing [B, 1], masks)``: masks of absent objects set to ``NO_OBJ_SCORE``."""
    appearing = score > 0
    return appearing, jnp.where(appearing[:, :, None, None], masks, NO_OBJ_SCORE).astype(
        jnp.float32
    )


def forward_sam_heads(
    model: EfficientTAM,
    features: jax.Array,
    points: tuple[jax.Array, jax.Array] | None = None,
    mask_inputs: jax.Array | None = None,
    multimask_output: bool = False,
) -> SamOutputs:
    """As ``sam2_base._forward_sam_heads``.

    Args:
      model: the EfficientTAM module.
      features: [B, g, g, 256] (memory-conditioned) image features.
      points: (coords [B, N, 2] in input-image pixels, labels [B, N] int32)
        or None (then one padding point labelled -1, as the official code).
      mask_inputs: [B, 1, h, w] mask logits/probabilities or None; resized
        (antialiased bilinear) to the prompt encoder's 4g x 4g if needed.
      multimask_output: static; choose among 3 masks by predicted IoU.
    """
    batch, grid = features.shape[0], features.shape[1]
    if points is None:
        points = (
            jnp.zeros((batch, 1, 2), jnp.float32),
            jnp.full((batch, 1), prompt_labels.PAD, jnp.int32),
        )
    sparse, dense = _encode_prompts(model, grid, points, mask_inputs)
    multimasks, ious, tokens, score = model.sam_mask_decoder(
        features,
        model.sam_prompt_encoder.get_dense_pe(),
        sparse,
        dense,
        multimask_output=multimask_output,
        repeat_image=False,
    )
    appearing, multimasks = _gate_masks(multimasks, score)
    if multimask_output:
        best = jnp.argmax(ious, axis=-1)  # first maximum, as torch.argmax
        low_res = jnp.take_along_axis(multimasks, best[:, None, None, None], axis=1)
        if tokens.shape[1] > 1:
            tokens = jnp.take_along_axis(tokens, best[:, None, None], axis=1)
    else:
        low_res = multimasks
    obj_ptr = _gate_pointer(model, model.obj_ptr_proj(tokens[:, 0]), appearing)
    high_res = _resize(low_res, model.image_size)
    return SamOutputs(multimasks, ious, low_res, high_res, obj_ptr, score)


def use_mask_as_output(
    model: EfficientTAM, features: jax.Array, mask_inputs: jax.Array
) -> SamOutputs:
    """As ``sam2_base._use_mask_as_output``: a binary mask becomes the output directly.

    The object pointer still comes from the SAM heads run on the raw image
    features with the mask (downsampled by ``mask_downsample``) as prompt.

    Args:
      model: the EfficientTAM module.
      features: [B, g, g, 256] image features without memory.
      mask_inputs: [B, 1, S, S] binary mask at the image size.
    """
    masks = mask_inputs.astype(jnp.float32)
    high_res = masks * MASK_OUT_SCALE + MASK_OUT_BIAS
    low_res = _resize(high_res, 4 * features.shape[1], antialias=True)  # S / 4 at stride 16
    small = model.mask_downsample(jnp.moveaxis(masks, 1, -1))  # [B, 4g, 4g, 1]
    heads = forward_sam_heads(model, features, mask_inputs=jnp.moveaxis(small, -1, 1))
    appearing = jnp.any(masks.reshape(masks.shape[0], -1) > 0.0, axis=1)[:, None]
    score = MASK_OUT_SCALE * appearing.astype(jnp.float32) + MASK_OUT_BIAS
    obj_ptr = _gate_pointer(model, heads.obj_ptr, appearing)
    ious = jnp.ones((masks.shape[0], 1), jnp.float32)
    return SamOutputs(low_res, ious, low_res, high_res, obj_ptr, score)


@struct.dataclass
class RowHeadOutputs:
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
    pad = jnp.full(labels.shape[:-1] + (1,), prompt_labels.PAD, labels.dtype)
    is_pad = jnp.concatenate([labels, pad], axis=-1) < 0
    real = jnp.sum(~is_pad, axis=-1, keepdims=True)
    pad_rank = jnp.cumsum(is_pad, axis=-1) - 1  # 0-based among the padding tokens
    return ~is_pad | (pad_rank < jnp.where(real > 0, 1, 2))


def _select(multimask: jax.Array, multi: jax.Array, single: jax.Array) -> jax.Array:
    """Per row: the 3 multimask entries, or the single one repeated 3 times."""
    cond = multimask.reshape((-1,) + (1,) * (multi.ndim - 1))
    return jnp.where(cond, multi, jnp.repeat(single, multi.shape[1], axis=1))


def sam_heads_per_row(
    model: EfficientTAM,
    features: jax.Array,
    coords: jax.Array,
    labels: jax.Array,
    mask_inputs: jax.Array | None,
) -> RowHeadOutputs:
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
    sparse, dense = _encode_prompts(model, features.shape[1], (coords, labels), mask_inputs)
    decoder = model.sam_mask_decoder
    masks, ious, tokens, score = decoder.predict_masks(
        features,
        model.sam_prompt_encoder.get_dense_pe(),
        sparse,
        dense,
        False,
        None,
        sparse_mask=official_prompt_tokens(labels),
    )
    appearing, masks = _gate_masks(masks, score)
    multimask = multimask_rows(labels)
    multi_masks = _select(multimask, masks[:, 1:], masks[:, :1])
    multi_ious = _select(multimask, ious[:, 1:], ious[:, :1])
    best = jnp.where(multimask, jnp.argmax(ious[:, 1:], axis=-1), 0)  # first max, as torch
    low_res = jnp.take_along_axis(multi_masks, best[:, None, None, None], axis=1)
    token_index = best + 1 if decoder.use_multimask_token_for_obj_ptr else jnp.zeros_like(best)
    token_index = jnp.where(multimask, token_index, 0)
    token = jnp.take_along_axis(tokens, token_index[:, None, None], axis=1)[:, 0]
    obj_ptr = _gate_pointer(model, model.obj_ptr_proj(token), appearing)
    return RowHeadOutputs(
        multi_masks,
        multi_ious.astype(jnp.float32),
        low_res,
        obj_ptr.astype(jnp.float32),
        score.astype(jnp.float32),
    )
