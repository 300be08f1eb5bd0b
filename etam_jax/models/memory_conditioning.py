"""Memory conditioning of a frame from the memory bank: the one path of tracker and training.

``sam2_base._prepare_memory_conditioned_features`` for a frame that is not an
initial conditioning frame: choose the bank's memories for this frame
(`memory_bank.select_memories`) and fuse them into the image features
(``EfficientTAM.condition_on_memory``). The tracker calls it at inference, the
training forward pass with ``pointers_past_only=False`` and a dropout key
(``SAM2Train`` in ``train()`` mode).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from etam_jax.models import memory_bank as mb
from etam_jax.models.efficienttam import EfficientTAM


def maskmem_pos_enc(model: EfficientTAM, grid: int) -> jax.Array:
    """[1, g, g, 64] memory position encoding (constant across frames, as the predictor caches it)."""
    return model.memory_encoder.position_encoding(
        jnp.zeros((1, grid, grid, model.memory_encoder.out_dim))
    )


def condition_on_bank(
    model: EfficientTAM,
    bank: mb.MemoryBank,
    features: jax.Array,
    pos: jax.Array,
    frame_idx,
    num_frames: int,
    reverse: bool = False,
    *,
    pointers_past_only: bool = True,
    dropout_rng: jax.Array | None = None,
) -> jax.Array:
    """Memory-conditioned ``[B, g, g, 256]`` features of bank rows ``B``.

    Args:
      model: the EfficientTAM module.
      bank: the memory bank of the B rows.
      features, pos: ``[B, g, g, 256]`` image features of the frame and their encoding.
      frame_idx: the frame (scalar, may be traced); ``num_frames``, ``reverse``:
        the clip length and tracking direction (which memories come before it).
      pointers_past_only: inference reads pointers of past conditioning frames
        only; training (``False``) reads every conditioning frame's.
      dropout_rng: training mode (the memory attention's dropout); None: inference.
    """
    memories = mb.select_memories(
        bank,
        frame_idx,
        reverse,
        num_frames,
        num_maskmem=model.num_maskmem,
        max_obj_ptrs=model.max_obj_ptrs_in_encoder,
        pointers_past_only=pointers_past_only,
    )
    pos_enc = maskmem_pos_enc(model, features.shape[1])
    return model.condition_on_memory(features, pos, memories, pos_enc, dropout_rng)
