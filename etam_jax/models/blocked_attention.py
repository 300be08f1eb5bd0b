"""Softmax attention over blocks of queries, for long sequences on CPU.

``jax.nn.dot_product_attention`` on the XLA CPU backend materialises and
re-reads the whole ``[B, H, N, M]`` logit tensor; for the 4096-token global
attention of the ViT and the 4096 x ~28k memory cross-attention that is
about 2x slower than torch's ``scaled_dot_product_attention``. Laying the
keys/values out heads-major once and walking the queries in blocks keeps
each block's logits small and brings it on par with torch. Accelerators
fuse the whole attention, so there the plain call is kept.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from einops import rearrange
from jaxtyping import Array, Bool, Float

# Query block size for long attention on CPU (measured: 256 and 512 alike, 128 slower for 28k keys).
CPU_QUERY_CHUNK = 256
# The logit of a masked key, as jax.nn.dot_product_attention (finite: an all-masked row averages).
_MASKED_LOGIT = -0.7 * float(jnp.finfo(jnp.float32).max)


def chunked_dot_product_attention(
    q: Float[Array, "b n h d"],
    k: Float[Array, "b m h d"],
    v: Float[Array, "b m h d"],
    chunk: int | None,
    *,
    bias: Float[Array, "b 1 1 m"] | None = None,
    mask: Bool[Array, "b 1 1 m"] | None = None,
) -> Float[Array, "b n h d"]:
    """Softmax attention; over blocks of ``chunk`` queries when ``chunk`` is set.

    Without ``chunk`` this is ``jax.nn.dot_product_attention(q, k, v, bias=bias,
    mask=mask)``. With it (the CPU path, see :func:`auto_query_chunk`), the
    result is the same within float rounding; logits and softmax in float32.

    Args:
      q: queries ``[B, N, H, D]``; ``chunk`` must divide ``N``.
      k, v: keys and values ``[B, M, H, D]``.
      chunk: query block size, or None.
      bias: per-key additive logit bias, ``[B, 1, 1, M]`` (broadcast over heads and queries).
      mask: per-key bool mask, ``[B, 1, 1, M]``; masked keys get a very negative
        logit (as ``jax.nn.dot_product_attention``, an all-masked row averages).

    Returns:
      ``[B, N, H, D]``.
    """
    if not chunk or chunk >= q.shape[1]:
        return jax.nn.dot_product_attention(q, k, v, bias=bias, mask=mask)
    blocks = rearrange(q * q.shape[-1] ** -0.5, "b (c m) h d -> c b h m d", m=chunk)
    k, v = (rearrange(x, "b n h d -> b h n d") for x in (k, v))
    key_bias = _key_bias(bias, mask)

    def attend(block: jax.Array) -> jax.Array:
        logits = jnp.einsum("bhmd,bhnd->bhmn", block, k, preferred_element_type=jnp.float32)
        if key_bias is not None:
            logits = logits + key_bias
        weights = jax.nn.softmax(logits, axis=-1).astype(v.dtype)
        return jnp.einsum("bhmn,bhnd->bhmd", weights, v)

    return rearrange(jax.lax.map(attend, blocks), "c b h m d -> b (c m) h d")


def _key_bias(bias: jax.Array | None, mask: jax.Array | None) -> jax.Array | None:
    """Bias and mask folded into one float32 additive term (one add per logit)."""
    if mask is None:
        return None if bias is None else bias.astype(jnp.float32)
    kept = jnp.zeros(mask.shape, jnp.float32) if bias is None else bias.astype(jnp.float32)
    return jnp.where(mask, kept, _MASKED_LOGIT)


def auto_query_chunk(num_queries: int) -> int | None:
    """The query block size :func:`chunked_dot_product_attention` should use here.

    Only on the CPU backend and for long sequences (accelerators fuse the
    whole attention and a sequential ``lax.map`` would only slow them down).
    """
    if (
        jax.default_backend() == "cpu"
        and num_queries > 4 * CPU_QUERY_CHUNK
        and num_queries % CPU_QUERY_CHUNK == 0
    ):
        return CPU_QUERY_CHUNK
    return None
