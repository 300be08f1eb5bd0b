"""Axial 2D rotary position encoding (official ``position_encoding.compute_axial_cis``
and ``apply_rotary_enc``), in real arithmetic.

The official code views channel pairs ``(2i, 2i+1)`` as complex numbers and
multiplies them by ``exp(i * angle)``; here a pair ``(a, b)`` becomes
``(a cos - b sin, a sin + b cos)``, the same float32 products. The first
half of the pairs rotates with the token's x coordinate, the second half
with its y coordinate; tokens are numbered row-major (``t = y * end_x + x``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from etam_jax.errors import EtamError


def axial_rope_angles(
    dim: int, end_x: int, end_y: int, theta: float = 10000.0
) -> Float[Array, "n half"]:
    """The rotation angles of an ``end_x`` x ``end_y`` grid: ``[end_x * end_y, dim // 2]`` float32.

    As ``compute_axial_cis`` (its complex result is ``exp(i * angles)``).

    Args:
      dim: the per-head channel count (a multiple of 4).
      end_x, end_y: grid width and height.
      theta: frequency base.
    """
    if dim % 4:
        raise EtamError(f"axial RoPE: head dim must be a multiple of 4, found {dim}")
    freqs = 1.0 / (
        jnp.float32(theta) ** (jnp.arange(0, dim, 4, dtype=jnp.float32)[: dim // 4] / dim)
    )
    t = jnp.arange(end_x * end_y)
    t_x = (t % end_x).astype(jnp.float32)
    t_y = (t // end_x).astype(jnp.float32)
    return jnp.concatenate([jnp.outer(t_x, freqs), jnp.outer(t_y, freqs)], axis=-1)


def axial_rope_tables(
    dim: int, end_x: int, end_y: int, theta: float = 10000.0
) -> tuple[Float[Array, "n half"], Float[Array, "n half"]]:
    """``(cos, sin)`` of :func:`axial_rope_angles`, each ``[end_x * end_y, dim // 2]`` float32."""
    angles = axial_rope_angles(dim, end_x, end_y, theta)
    return jnp.cos(angles), jnp.sin(angles)


def apply_rope(
    x: Float[Array, "... n h d"], cos: Float[Array, "n half"], sin: Float[Array, "n half"]
) -> Float[Array, "... n h d"]:
    """Rotates the channel pairs of ``x`` by the angles of its tokens.

    Args:
      x: ``[..., N, heads, D]`` (the ``dot_product_attention`` layout, any
        leading axes, e.g. ``[B, N, H, D]`` or ``[B, S, N, H, D]`` where every
        slot gets the same angles).
      cos, sin: ``[N, D // 2]`` tables of :func:`axial_rope_tables`.

    Returns:
      ``x`` rotated, in ``x``'s dtype (computed in float32, as the official
      ``xq.float()`` then ``type_as``).
    """
    pairs = x.astype(jnp.float32).reshape(*x.shape[:-1], -1, 2)
    a, b = pairs[..., 0], pairs[..., 1]
    c, s = cos[:, None, :], sin[:, None, :]  # broadcast over heads
    out = jnp.stack([a * c - b * s, a * s + b * c], axis=-1)
    return out.reshape(x.shape).astype(x.dtype)


def apply_rotary_enc(
    xq: Float[Array, "b n h d"],
    xk: Float[Array, "b m h d"],
    cos: Float[Array, "n half"],
    sin: Float[Array, "n half"],
    repeat_freqs_k: bool = False,
) -> tuple[jax.Array, jax.Array]:
    """RoPE on queries and keys, as the official ``apply_rotary_enc``.

    Args:
      xq: ``[B, N, H, D]`` queries (``N`` = rows of the tables).
      xk: ``[B, M, H, D]`` keys; ``M == N``, or with ``repeat_freqs_k`` a
        multiple ``r * N`` (``r`` memory frames, each rotated like the queries).
        ``M == 0`` leaves the keys as they are.
      cos, sin: ``[N, D // 2]`` tables.
      repeat_freqs_k: tile the tables along the key tokens.

    Returns:
      ``(xq, xk)`` rotated.
    """
    n, m = xq.shape[-3], xk.shape[-3]
    q_out = apply_rope(xq, cos, sin)
    if m == 0:
        return q_out, xk
    if m != n and not (repeat_freqs_k and m % n == 0):
        raise EtamError(
            f"apply_rotary_enc: {m} key tokens for {n} query tokens (repeat_freqs_k={repeat_freqs_k})"
        )
    # As the official freqs_cis.repeat(r, 1): frame-major tiling.
    k_frames = xk.reshape(*xk.shape[:-3], m // n, n, *xk.shape[-2:])
    return q_out, apply_rope(k_frames, cos, sin).reshape(xk.shape)
