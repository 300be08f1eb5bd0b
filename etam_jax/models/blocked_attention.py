"""Softmax attention over blocks of queries, for long sequences on CPU.

``jax.nn.dot_product_attention`` on the XLA CPU backend materialises and
re-reads the whole ``[B, H, N, M]`` logit tensor; for the 4096-token global
attention of the ViT and the 4096 x ~28k memory cross-attention that is
about 2x slower than torch's ``scaled_dot_product_attention``. Laying the
keys/values out heads-major once and walking the queries in blocks keeps
each block's logits small and brings it on par with torch. With a key
mask and ``key_block``, keys are also walked in blocks (online softmax) and
blocks masked for the whole batch (empty memory slots) are skipped at run
time, which the static shapes otherwise forbid. Accelerators fuse the whole
attention, so there the plain call is kept. No XLA flag is needed (measured:
``--xla_cpu_use_thunk_runtime=false``, ``--xla_cpu_use_xnnpack=true`` change
nothing here).
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from einops import rearrange
from jaxtyping import Array, Bool, Float

# Query block size for long attention on CPU (measured: 256 and 512 alike, 128 slower for 28k keys).
CPU_QUERY_CHUNK = 256
# Largest key block worth walking (measured at 4096 x 28k: 2048 ~7% faster than 4096, 512-1024 alike).
CPU_KEY_BLOCK = 2048
# The logit of a masked key, as jax.nn.dot_product_attention (finite: an all-masked row averages).
_MASKED_LOGIT = -0.7 * float(jnp.finfo(jnp.float32).max)


def chunked_dot_product_attention(
    q: Float[Array, "b n h d"],
    k: Float[Array, "b m h d"],
    v: Float[Array, "b m h e"],
    chunk: int | None,
    *,
    bias: Float[Array, "b 1 1 m"] | None = None,
    mask: Bool[Array, "b 1 1 m"] | None = None,
    key_block: int | None = None,
) -> Float[Array, "b n h d"]:
    """Softmax attention; over blocks of ``chunk`` queries when ``chunk`` is set.

    Without ``chunk`` this is ``jax.nn.dot_product_attention(q, k, v, bias=bias,
    mask=mask)``. With it (the CPU path, see :func:`auto_query_chunk`), the
    result is the same within float rounding; logits and softmax in float32.

    Args:
      q: queries ``[B, N, H, D]``; ``chunk`` must divide ``N``.
      k, v: keys ``[B, M, H, D]`` and values ``[B, M, H, E]`` (``E`` may differ from ``D``).
      chunk: query block size, or None.
      bias: per-key additive logit bias, ``[B, 1, 1, M]`` (broadcast over heads and queries).
      mask: per-key bool mask, ``[B, 1, 1, M]``; masked keys get a very negative
        logit (as ``jax.nn.dot_product_attention``, an all-masked row averages).
      key_block: with ``chunk`` and ``mask``: walk the keys in blocks of this
        many (the last ``M % key_block`` keys always attended) with an online
        softmax, skipping, at run time, every block masked for all batch
        elements. Same result, except a row whose keys are all masked averages
        only the values of the blocks attended (zeros if none).

    Returns:
      ``[B, N, H, E]``.
    """
    if not chunk or chunk >= q.shape[1]:
        if v.shape[-1] == q.shape[-1]:  # (dot_product_attention wants one head size)
            return jax.nn.dot_product_attention(q, k, v, bias=bias, mask=mask)
        chunk, key_block = q.shape[1], None  # one block of every query and key
    blocks = rearrange(q * q.shape[-1] ** -0.5, "b (c m) h d -> c b h m d", m=chunk)
    k, v = (rearrange(x, "b n h d -> b h n d") for x in (k, v))
    key_bias = _key_bias(bias, mask)
    if key_block and mask is not None and key_block < k.shape[2]:
        attend = _block_skipping(k, v, key_bias, mask[:, 0, 0], key_block)
    else:

        def attend(block: jax.Array) -> jax.Array:
            logits = jnp.einsum("bhmd,bhnd->bhmn", block, k, preferred_element_type=jnp.float32)
            if key_bias is not None:
                logits = logits + key_bias
            weights = jax.nn.softmax(logits, axis=-1).astype(v.dtype)
            return jnp.einsum("bhmn,bhnd->bhmd", weights, v)

    return rearrange(jax.lax.map(attend, blocks), "c b h m d -> b (c m) h d")


class _Softmax(NamedTuple):
    """Online-softmax state of a query block: running max, normaliser, weighted values."""

    top: jax.Array  # [b, h, c] float32
    total: jax.Array  # [b, h, c] float32
    acc: jax.Array  # [b, h, c, e] float32


def _absorb(state: _Softmax, q: jax.Array, k: jax.Array, v: jax.Array, bias: jax.Array) -> _Softmax:
    """Adds keys ``k``/values ``v`` ([b, h, t, d], logit bias [b, 1, 1, t]) to ``state``."""
    logits = jnp.einsum("bhcd,bhtd->bhct", q, k, preferred_element_type=jnp.float32) + bias
    top = jnp.maximum(state.top, logits.max(-1))
    weights = jnp.exp(logits - top[..., None])
    rescale = jnp.exp(state.top - top)
    values = jnp.einsum(
        "bhct,bhtd->bhcd", weights.astype(v.dtype), v, preferred_element_type=jnp.float32
    )
    return _Softmax(
        top, state.total * rescale + weights.sum(-1), state.acc * rescale[..., None] + values
    )


def _by_block(x: jax.Array, axis: int, key_block: int) -> jax.Array:
    """Splits ``axis`` into blocks of ``key_block``, block index first: [.., M, ..] -> [n, .., key_block, ..]."""
    blocks = x.reshape(*x.shape[:axis], -1, key_block, *x.shape[axis + 1 :])
    return jnp.moveaxis(blocks, axis, 0)


def _block_skipping(
    k: jax.Array, v: jax.Array, key_bias: jax.Array, mask: jax.Array, key_block: int
):
    """The per-query-block attention of :func:`chunked_dot_product_attention` with ``key_block``.

    Args: k, v heads-major ``[B, H, M, D]``; key_bias ``[B, 1, 1, M]``; mask ``[B, M]``; key_block.
    """
    split = k.shape[2] // key_block * key_block
    xs = (
        _by_block(k[:, :, :split], 2, key_block),
        _by_block(v[:, :, :split], 2, key_block),
        _by_block(key_bias[..., :split], 3, key_block),
    )
    live = _by_block(mask[:, :split], 1, key_block).any(
        axis=(1, 2)
    )  # [n]: attended by some batch element

    def attend(q: jax.Array) -> jax.Array:
        b, h, c, _ = q.shape
        state = _Softmax(
            jnp.full((b, h, c), -jnp.inf), jnp.zeros((b, h, c)), jnp.zeros((b, h, c, v.shape[-1]))
        )
        if split < k.shape[2]:
            state = _absorb(state, q, k[:, :, split:], v[:, :, split:], key_bias[..., split:])

        def step(state: _Softmax, block) -> tuple[_Softmax, None]:
            *kvb, alive = block
            return jax.lax.cond(alive, lambda s: _absorb(s, q, *kvb), lambda s: s, state), None

        state, _ = jax.lax.scan(step, state, (*xs, live))
        return (state.acc / jnp.where(state.total > 0, state.total, 1.0)[..., None]).astype(v.dtype)

    return attend


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
