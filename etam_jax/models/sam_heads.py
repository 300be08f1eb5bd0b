"""SAM heads of the tracker: prompts + features -> masks, IoUs, object pointer.

Ports of ``sam2_base._forward_sam_heads`` and ``_use_mask_as_output``
(single feature level: EfficientTAM has no high-resolution features).
Masks are stacks ``[B, M, H, W]``; feature maps are ``[B, g, g, C]``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
from flax import struct

from etam_jax.inference.resize import resize_bilinear

if TYPE_CHECKING:
    from etam_jax.models.efficienttam import EfficientTAM

NO_OBJ_SCORE = -1024.0  # sam2_base.NO_OBJ_SCORE
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
            -jnp.ones((batch, 1), jnp.int32),
        )
    dense_mask = None
    if mask_inputs is not None:
        if mask_inputs.shape[-1] != 4 * grid:
            mask_inputs = _resize(mask_inputs.astype(jnp.float32), 4 * grid, antialias=True)
        dense_mask = jnp.moveaxis(mask_inputs.astype(jnp.float32), 1, -1)  # [B, 4g, 4g, 1]
    prompts = model.sam_prompt_encoder
    sparse, dense = prompts(points=points, boxes=None, masks=dense_mask)
    multimasks, ious, tokens, score = model.sam_mask_decoder(
        features,
        prompts.get_dense_pe(),
        sparse,
        dense,
        multimask_output=multimask_output,
        repeat_image=False,
    )
    appearing = score > 0  # [B, 1]
    multimasks = jnp.where(appearing[:, :, None, None], multimasks, NO_OBJ_SCORE).astype(
        jnp.float32
    )
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
    low_res = _resize(high_res, high_res.shape[-1] // 4, antialias=True)
    small = model.mask_downsample(jnp.moveaxis(masks, 1, -1))  # [B, S/4, S/4, 1]
    heads = forward_sam_heads(model, features, mask_inputs=jnp.moveaxis(small, -1, 1))
    appearing = jnp.any(masks.reshape(masks.shape[0], -1) > 0.0, axis=1)[:, None]
    score = MASK_OUT_SCALE * appearing.astype(jnp.float32) + MASK_OUT_BIAS
    obj_ptr = _gate_pointer(model, heads.obj_ptr, appearing)
    ious = jnp.ones((masks.shape[0], 1), jnp.float32)
    return SamOutputs(low_res, ious, low_res, high_res, obj_ptr, score)
