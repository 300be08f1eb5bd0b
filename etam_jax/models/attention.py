"""SAM's attention layer (official ``sam.transformer.Attention``).

Projects q/k/v (optionally down to ``embedding_dim // downsample_rate``;
keys/values may come from ``kv_in_dim``), attends per head with
``jax.nn.dot_product_attention`` and projects back.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from einops import rearrange
from flax import nnx

from etam_jax.models.layers import linear


class Attention(nnx.Module):
    """Multi-head attention with q_proj/k_proj/v_proj/out_proj (torch names)."""

    def __init__(
        self,
        embedding_dim: int,
        num_heads: int,
        *,
        rngs: nnx.Rngs,
        downsample_rate: int = 1,
        dropout: float = 0.0,
        kv_in_dim: int | None = None,
        dtype=jnp.float32,
    ):
        kv_in_dim = kv_in_dim or embedding_dim
        self.internal_dim = embedding_dim // downsample_rate
        if self.internal_dim % num_heads:
            raise ValueError(f"num_heads {num_heads} must divide internal dim {self.internal_dim}")
        self.num_heads = num_heads
        self.dropout = dropout
        self.q_proj = linear(
            embedding_dim, self.internal_dim, axes=("embed", "heads"), rngs=rngs, dtype=dtype
        )
        self.k_proj = linear(
            kv_in_dim, self.internal_dim, axes=("kv", "heads"), rngs=rngs, dtype=dtype
        )
        self.v_proj = linear(
            kv_in_dim, self.internal_dim, axes=("kv", "heads"), rngs=rngs, dtype=dtype
        )
        self.out_proj = linear(
            self.internal_dim, embedding_dim, axes=("heads", "embed"), rngs=rngs, dtype=dtype
        )

    def split_heads(self, x: jax.Array) -> jax.Array:
        """(b, n, h*c) -> (b, n, h, c), the layout ``dot_product_attention`` takes."""
        return rearrange(x, "b n (h c) -> b n h c", h=self.num_heads)

    def project_qkv(self, q: jax.Array, k: jax.Array, v: jax.Array) -> tuple[jax.Array, ...]:
        return tuple(
            self.split_heads(f(x))
            for f, x in ((self.q_proj, q), (self.k_proj, k), (self.v_proj, v))
        )

    def merge_heads_and_project(self, out: jax.Array) -> jax.Array:
        return self.out_proj(rearrange(out, "b n h c -> b n (h c)"))

    def __call__(
        self, q: jax.Array, k: jax.Array, v: jax.Array, key_mask: jax.Array | None = None
    ) -> jax.Array:
        """Args: q (b, nq, embedding_dim); k, v (b, nk, kv_in_dim); key_mask (b, nk) bool,
        False keys are left out (None: all attended). Returns (b, nq, embedding_dim)."""
        q, k, v = self.project_qkv(q, k, v)
        mask = None if key_mask is None else key_mask[:, None, None, :]
        return self.merge_heads_and_project(jax.nn.dot_product_attention(q, k, v, mask=mask))
