"""Memory attention (official ``sam2.modeling.memory_attention``), static-slot memory.

Conditions the current frame's features on the memory bank: ``num_layers``
pre-norm layers of RoPE self-attention, cross-attention to the memories
(:class:`~etam_jax.models.pooled_attention.MemoryCrossAttention`, with the
memory-token pooling of ``cfg.pool_window`` / ``cfg.pool_correction``) and a
ReLU FFN, then a final LayerNorm. The official configs fix
``pos_enc_at_input`` (adds ``0.1 * curr_pos``), ``pos_enc_at_attn`` false,
``pos_enc_at_cross_attn_keys`` true and ``pos_enc_at_cross_attn_queries`` false.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx
from jaxtyping import Array, Bool, Float

from etam_jax.errors import EtamError
from etam_jax.models.attention import Attention
from etam_jax.models.layers import layer_norm, linear
from etam_jax.models.pooled_attention import (
    MemoryBank,
    MemoryCrossAttention,
    attend,
    check_pooling,
    dropout,
)
from etam_jax.models.rope import apply_rope, axial_rope_tables

# As MemoryAttention.forward with pos_enc_at_input: output = curr + 0.1 * curr_pos.
INPUT_POS_SCALE = 0.1
# Dropout sites of one layer: self-attn weights, dropout1, cross-attn weights, dropout2, FFN, dropout3.
_NUM_DROPOUT_SITES = 6


class RoPEAttention(Attention):
    """``self_attn``: self-attention with axial RoPE on queries and keys (official ``RoPEAttention``)."""

    def __call__(
        self,
        x: Float[Array, "b n c"],
        rope: tuple[jax.Array, jax.Array],
        rng: jax.Array | None = None,
    ) -> Float[Array, "b n c"]:
        """Args: x [B, g*g, C] (q = k = v); rope (cos, sin) [g*g, D/2]; rng for dropout. Returns [B, g*g, C]."""
        q, k, v = self.project_qkv(x, x, x)
        q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        return self.merge_heads_and_project(attend(q, k, v, dropout_rate=self.dropout, rng=rng))


class MemoryAttentionLayer(nnx.Module):
    """One layer (official ``MemoryAttentionLayer``): self-attn, cross-attn, FFN, all pre-norm."""

    def __init__(self, cfg: ml_collections.ConfigDict, *, rngs: nnx.Rngs, dtype=jnp.float32):
        d, heads = cfg.d_model, cfg.num_heads
        self.self_attn = RoPEAttention(d, heads, dropout=cfg.dropout, rngs=rngs, dtype=dtype)
        self.cross_attn_image = MemoryCrossAttention(
            d,
            heads,
            kv_in_dim=cfg.kv_in_dim,
            pool_window=cfg.pool_window,
            pool_correction=cfg.pool_correction,
            dropout=cfg.dropout,
            rngs=rngs,
            dtype=dtype,
        )
        self.linear1 = linear(d, cfg.dim_feedforward, axes=("embed", "mlp"), rngs=rngs, dtype=dtype)
        self.linear2 = linear(cfg.dim_feedforward, d, axes=("mlp", "embed"), rngs=rngs, dtype=dtype)
        self.norm1 = layer_norm(d, rngs=rngs, dtype=dtype)
        self.norm2 = layer_norm(d, rngs=rngs, dtype=dtype)
        self.norm3 = layer_norm(d, rngs=rngs, dtype=dtype)
        self.dropout_rate = cfg.dropout

    def __call__(
        self,
        tgt: Float[Array, "b n c"],
        bank: MemoryBank,
        rope: tuple[jax.Array, jax.Array],
        grid: int,
        rng: jax.Array | None = None,
    ) -> Float[Array, "b n c"]:
        """As ``MemoryAttentionLayer.forward``; ``rng`` (or None) drives every dropout."""
        keys = (
            list(jax.random.split(rng, _NUM_DROPOUT_SITES))
            if rng is not None
            else [None] * _NUM_DROPOUT_SITES
        )
        rate = self.dropout_rate
        tgt = tgt + dropout(self.self_attn(self.norm1(tgt), rope, keys[0]), rate, keys[1])
        tgt = tgt + dropout(
            self.cross_attn_image(self.norm2(tgt), bank, rope, grid, keys[2]), rate, keys[3]
        )
        hidden = dropout(jax.nn.relu(self.linear1(self.norm3(tgt))), rate, keys[4])
        return tgt + dropout(self.linear2(hidden), rate, keys[5])


class MemoryAttention(nnx.Module):
    """The memory attention (official ``MemoryAttention``; keys ``layers.{i}.*``, ``norm``).

    Args:
      cfg: ``get_model_config(...).memory_attention``.
      feat_size: side ``g`` of the feature grid (64 at 1024), checked
        against the pooling window.
      rngs: parameter initialisation.
      dtype: compute dtype (parameters stay float32).
    """

    def __init__(
        self, cfg: ml_collections.ConfigDict, feat_size: int, *, rngs: nnx.Rngs, dtype=jnp.float32
    ):
        check_pooling(cfg.pool_window, cfg.pool_correction, feat_size)
        self.layers = nnx.List(
            [MemoryAttentionLayer(cfg, rngs=rngs, dtype=dtype) for _ in range(cfg.num_layers)]
        )
        self.norm = layer_norm(cfg.d_model, rngs=rngs, dtype=dtype)
        self.head_dim = cfg.d_model // cfg.num_heads
        self.rope_theta = cfg.rope_theta

    def __call__(
        self,
        curr: Float[Array, "b n c"],
        curr_pos: Float[Array, "b n c"],
        memory: Float[Array, "b s n m"],
        memory_pos: Float[Array, "b s n m"],
        memory_valid: Bool[Array, "b s"],
        ptr: Float[Array, "b p m"],
        ptr_pos: Float[Array, "b p m"],
        ptr_valid: Bool[Array, "b p"],
        *,
        deterministic: bool = True,
        rng: jax.Array | None = None,
    ) -> Float[Array, "b n c"]:
        """Conditions ``curr`` on the valid memories and object pointers.

        Equals the official ``MemoryAttention.forward`` (batch-first) on, per
        batch element, the concatenation of its valid memory slots (in slot
        order, each ``g*g`` tokens) followed by its valid pointer tokens, with
        ``num_obj_ptr_tokens`` = their number. Invalid entries may hold anything.

        Args:
          curr, curr_pos: ``[B, g*g, d_model]`` current features and their position encoding.
          memory, memory_pos: ``[B, S, g*g, kv_in_dim]`` memory slots (pos incl. temporal encoding).
          memory_valid: ``[B, S]`` bool.
          ptr, ptr_pos: ``[B, P, kv_in_dim]`` object-pointer tokens and their encoding.
          ptr_valid: ``[B, P]`` bool.
          deterministic: no dropout; otherwise ``rng`` is required.
          rng: dropout key.

        Returns:
          ``[B, g*g, d_model]`` memory-conditioned features.
        """
        grid = _grid_side(curr.shape[1])
        rope = axial_rope_tables(self.head_dim, grid, grid, self.rope_theta)
        if not deterministic and rng is None:
            raise EtamError("MemoryAttention: deterministic=False needs a dropout rng, found None")
        bank = make_bank(memory, memory_pos, memory_valid, ptr, ptr_pos, ptr_valid)
        output = curr + INPUT_POS_SCALE * curr_pos
        for i, layer in enumerate(self.layers):
            layer_rng = None if deterministic else jax.random.fold_in(rng, i)
            output = layer(output, bank, rope, grid, layer_rng)
        return self.norm(output)


def _grid_side(num_tokens: int) -> int:
    """The side of the square token grid (the official ``math.sqrt(q.shape[-2])``)."""
    side = math.isqrt(num_tokens)
    if side * side != num_tokens:
        raise EtamError(
            f"MemoryAttention: curr has {num_tokens} tokens, expected a square grid g*g"
        )
    return side


def make_bank(
    memory: jax.Array,
    memory_pos: jax.Array,
    memory_valid: jax.Array,
    ptr: jax.Array,
    ptr_pos: jax.Array,
    ptr_valid: jax.Array,
) -> MemoryBank:
    """Cross-attention keys (memory + pos, as pos_enc_at_cross_attn_keys) and values.

    Invalid entries are zeroed first, so non-finite garbage cannot leak
    through masked attention (0 * nan).
    """
    memory_valid, ptr_valid = memory_valid.astype(bool), ptr_valid.astype(bool)
    slot_ok, ptr_ok = memory_valid[:, :, None, None], ptr_valid[:, :, None]
    memory = jnp.where(slot_ok, memory, 0)
    ptr = jnp.where(ptr_ok, ptr, 0)
    return MemoryBank(
        keys=memory + jnp.where(slot_ok, memory_pos, 0),
        values=memory,
        valid=memory_valid,
        ptr_keys=ptr + jnp.where(ptr_ok, ptr_pos, 0),
        ptr_values=ptr,
        ptr_valid=ptr_valid,
    )
