"""Cross-attention from the current frame to a static-slot memory bank, with
EfficientTAM's memory-token pooling (official ``RoPEAttention`` with
``rope_k_repeat``, ``EfficientRoPEAttention1`` = Eq. 5, ``EfficientRoPEAttention2``
= Eq. 6).

The bank is ``S`` spatial memory slots of ``g * g`` tokens (with a validity
mask) and ``P`` object-pointer tokens (with a validity mask). Invalid slots
and tokens are masked out, so the result equals the official call on the
concatenation of the valid ones in slot order.

Pooling (``window`` w > 1): after RoPE, each valid slot's keys and values are
averaged over w x w blocks of the feature grid; pointer tokens are never
pooled. ``eq5`` adds ``ln(w * w)`` to the logits of pooled keys; ``eq6`` adds
``ln(w * w)`` to every channel of the pooled key vectors (so the logit gains
``ln(w * w) * sum(q) / sqrt(d)``); ``none`` adds nothing. As the official code
(``num_k_rope <= nq``), a batch element with at most one valid slot attends
to its full, unpooled memory instead; the choice is made per element with
``jnp.where`` over one key buffer of ``max(g * g, S * g * g / w**2)`` tokens,
so one attention serves both. On CPU that buffer is attended in blocks of one
(pooled) slot, and blocks empty in every batch element are skipped (their keys
are not even projected).

Without attention dropout (inference), v_proj is applied after the softmax
(rows sum to 1, so ``P @ (m W + b) = (P @ m) W + b``): the weighted sum runs
over the 64 raw memory channels instead of 256 projected ones.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, Bool, Float

from etam_jax.errors import EtamError
from etam_jax.models.attention import Attention
from etam_jax.models.blocked_attention import (
    CPU_KEY_BLOCK,
    auto_query_chunk,
    chunked_dot_product_attention,
)
from etam_jax.models.configs import POOL_CORRECTIONS
from etam_jax.models.rope import apply_rope


class MemoryBank(NamedTuple):
    """The cross-attention inputs of one call (a pytree).

    Attributes:
      keys: ``[B, S, g*g, kv_dim]`` memory features plus their position encoding.
      values: ``[B, S, g*g, kv_dim]`` memory features.
      valid: ``[B, S]`` bool, which slots hold a memory.
      ptr_keys: ``[B, P, kv_dim]`` object-pointer tokens plus their position encoding.
      ptr_values: ``[B, P, kv_dim]`` object-pointer tokens.
      ptr_valid: ``[B, P]`` bool.
    """

    keys: jax.Array
    values: jax.Array
    valid: jax.Array
    ptr_keys: jax.Array
    ptr_values: jax.Array
    ptr_valid: jax.Array


def check_pooling(window: int, correction: str, grid: int) -> None:
    """Raises EtamError unless ``window`` divides ``grid`` and ``correction`` is known."""
    if correction not in POOL_CORRECTIONS:
        raise EtamError(
            f"memory_attention.pool_correction: expected one of {', '.join(POOL_CORRECTIONS)}, found {correction!r}"
        )
    if window < 1 or grid % window:
        raise EtamError(
            f"memory_attention.pool_window: expected a divisor of the feature grid {grid}, found {window}"
        )


def attend(
    q: Float[Array, "b n h d"],
    k: Float[Array, "b m h d"],
    v: Float[Array, "b m h d"],
    *,
    bias: Float[Array, "b 1 1 m"] | None = None,
    mask: Bool[Array, "b 1 1 m"] | None = None,
    dropout_rate: float = 0.0,
    rng: jax.Array | None = None,
    key_block: int | None = None,
) -> Float[Array, "b n h d"]:
    """Scaled dot-product attention with a logit bias, a key mask and attention dropout.

    Without ``rng`` (or with rate 0) this is ``jax.nn.dot_product_attention``
    (on CPU over query blocks, skipping the ``key_block``-sized blocks of keys
    masked for the whole batch: :mod:`~etam_jax.models.blocked_attention`);
    with it, the softmax weights are dropped as torch's ``dropout_p`` does.
    Masked keys get the most negative logit (an all-masked row averages).
    """
    if rng is None or dropout_rate == 0.0:
        chunk = auto_query_chunk(q.shape[1])
        return chunked_dot_product_attention(
            q, k, v, chunk, bias=bias, mask=mask, key_block=key_block
        )
    logits = jnp.einsum("bnhd,bmhd->bhnm", q, k).astype(jnp.float32) / math.sqrt(q.shape[-1])
    if bias is not None:
        logits = logits + bias
    if mask is not None:
        logits = jnp.where(mask, logits, jnp.finfo(jnp.float32).min)
    probs = dropout(jax.nn.softmax(logits, axis=-1), dropout_rate, rng)
    return jnp.einsum("bhnm,bmhd->bnhd", probs.astype(v.dtype), v)


def dropout(x: jax.Array, rate: float, rng: jax.Array | None) -> jax.Array:
    """Inverted dropout (torch ``nn.Dropout``); the identity without ``rng``."""
    if rng is None or rate == 0.0:
        return x
    keep = jax.random.bernoulli(rng, 1.0 - rate, x.shape)
    return jnp.where(keep, x / (1.0 - rate), 0).astype(x.dtype)


def pool_tokens(x: Float[Array, "b s n h d"], grid: int, window: int) -> Float[Array, "b s m h d"]:
    """Averages each slot's ``grid x grid`` tokens over ``window x window`` blocks.

    As the official reshape to ``(..., g, g)`` then ``avg_pool2d``: token
    ``t = y * g + x`` sits at row ``y``, column ``x``; pooled tokens are
    numbered row-major over the ``(g / w) x (g / w)`` grid.
    """
    b, s, _, h, d = x.shape
    side = grid // window
    blocks = x.reshape(b, s, side, window, side, window, h, d)
    return blocks.mean(axis=(3, 5)).reshape(b, s, side * side, h, d)


def _pad_tokens(x: jax.Array, length: int) -> jax.Array:
    """Zero-pads axis 1 to ``length``."""
    pad = [(0, 0)] * x.ndim
    pad[1] = (0, length - x.shape[1])
    return jnp.pad(x, pad)


def _select(use_first: jax.Array, first: jax.Array, second: jax.Array) -> jax.Array:
    """Per batch element ``first`` where ``use_first`` ([B] bool) else ``second``."""
    return jnp.where(use_first.reshape(-1, *[1] * (first.ndim - 1)), first, second)


def key_buffer_length(slots: int, tokens: int, window: int) -> int:
    """Spatial keys each query attends to with ``slots`` slots of ``tokens`` tokens: all of
    them unpooled, else the pooled ones padded to at least one unpooled slot (the fallback)."""
    if window == 1 or slots == 1:
        return slots * tokens
    return max(tokens, slots * (tokens // window**2))


def spatial_keys(
    k: Float[Array, "b s n h d"],
    v: Float[Array, "b s n h d"],
    valid: Bool[Array, "b s"],
    grid: int,
    window: int,
    correction: str,
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """The spatial memory keys/values as attended: full, or pooled per element.

    Args:
      k, v: RoPE'd keys and values of every slot.
      valid: which slots hold a memory.
      grid, window, correction: the feature grid and the pooling config.

    Returns:
      ``(keys [B, L, H, D], values [B, L, H, D], logit bias [B, L], mask [B, L])``.
    """
    b, s, n = k.shape[:3]
    if window == 1 or s == 1:  # never pooled (one slot holds at most one frame)
        full = (k.reshape(b, s * n, *k.shape[3:]), v.reshape(b, s * n, *v.shape[3:]))
        return *full, jnp.zeros((b, s * n), jnp.float32), jnp.repeat(valid, n, axis=1)
    area_log = math.log(window * window)
    pooled_k, pooled_v = pool_tokens(k, grid, window), pool_tokens(v, grid, window)
    if correction == "eq6":  # As EfficientRoPEAttention2: the bias sits on the key vectors.
        pooled_k = pooled_k + jnp.asarray(area_log, pooled_k.dtype)
    m = pooled_k.shape[2]
    length = key_buffer_length(s, n, window)
    pooled = [_pad_tokens(x.reshape(b, s * m, *x.shape[3:]), length) for x in (pooled_k, pooled_v)]
    pooled_mask = _pad_tokens(jnp.repeat(valid, m, axis=1), length)
    # The fallback: exactly one valid slot (gathered, so garbage elsewhere cannot leak).
    first = jnp.argmax(valid, axis=1)
    single = [
        _pad_tokens(jnp.take_along_axis(x, first[:, None, None, None, None], axis=1)[:, 0], length)
        for x in (k, v)
    ]
    num_valid = valid.sum(axis=1)
    single_mask = (jnp.arange(length) < n)[None, :] & (num_valid >= 1)[:, None]
    use_pooled = num_valid > 1  # As the official `num_k_rope <= nq` -> full attention.
    bias = jnp.where(use_pooled[:, None] & (correction == "eq5"), area_log, 0.0) * jnp.ones(
        (b, length)
    )
    keys, values = (_select(use_pooled, p, f) for p, f in zip(pooled, single))
    return keys, values, bias.astype(jnp.float32), _select(use_pooled, pooled_mask, single_mask)


class MemoryCrossAttention(Attention):
    """``cross_attn_image``: RoPE'd, optionally pooled attention to the memory bank.

    Parameters as the official ``Attention`` (``q_proj``, ``k_proj``/``v_proj``
    from ``kv_in_dim``, ``out_proj``).
    """

    def __init__(
        self,
        embedding_dim: int,
        num_heads: int,
        *,
        kv_in_dim: int,
        pool_window: int,
        pool_correction: str,
        dropout: float,
        rngs: nnx.Rngs,
        dtype=jnp.float32,
    ):
        super().__init__(
            embedding_dim, num_heads, dropout=dropout, kv_in_dim=kv_in_dim, rngs=rngs, dtype=dtype
        )
        self.pool_window = pool_window
        self.pool_correction = pool_correction

    def _heads(self, x: jax.Array) -> jax.Array:
        """(..., h*c) -> (..., h, c)."""
        return x.reshape(*x.shape[:-1], self.num_heads, -1)

    def __call__(
        self,
        x: Float[Array, "b n c"],
        bank: MemoryBank,
        rope: tuple[jax.Array, jax.Array],
        grid: int,
        rng: jax.Array | None = None,
    ) -> Float[Array, "b n c"]:
        """Args: x [B, g*g, C] queries; bank; rope (cos, sin) [g*g, D/2]; grid g; rng for dropout.

        Returns: [B, g*g, C].
        """
        check_pooling(self.pool_window, self.pool_correction, grid)
        q = apply_rope(self._heads(self.q_proj(x)), *rope)
        k = self._slot_keys(
            bank.keys, bank.valid, rope, slot_by_slot=auto_query_chunk(x.shape[1]) is not None
        )
        fold = rng is None or self.dropout == 0.0
        values = self._raw_values if fold else lambda t: self._heads(self.v_proj(t))
        k, v, bias, mask = spatial_keys(
            k, values(bank.values), bank.valid, grid, self.pool_window, self.pool_correction
        )
        # Object-pointer tokens: no RoPE, no pooling, appended after the spatial memory.
        k = jnp.concatenate([k, self._heads(self.k_proj(bank.ptr_keys))], axis=1)
        v = jnp.concatenate([v, values(bank.ptr_values)], axis=1)
        mask = jnp.concatenate([mask, bank.ptr_valid], axis=1)[:, None, None, :]
        if self.pool_window > 1 and self.pool_correction == "eq5":
            bias = jnp.concatenate([bias, jnp.zeros(bank.ptr_valid.shape, jnp.float32)], axis=1)[
                :, None, None, :
            ]
        else:
            bias = None  # nothing to add: spare the pass over the logits
        # Key blocks that tile one slot (pooled or not; the fallback's keys are w*w of them): on CPU
        # the blocks of slots empty in every batch element are skipped, as the official
        # concatenation of the valid memories only would.
        pooled = self.pool_window > 1 and bank.keys.shape[1] > 1
        key_block = math.gcd(grid * grid // (self.pool_window**2 if pooled else 1), CPU_KEY_BLOCK)
        out = attend(
            q, k, v, bias=bias, mask=mask, dropout_rate=self.dropout, rng=rng, key_block=key_block
        )
        return self.merge_heads_and_project(self._project_values(out) if fold else out)

    def _slot_keys(
        self,
        keys: jax.Array,
        valid: jax.Array,
        rope: tuple[jax.Array, jax.Array],
        slot_by_slot: bool,
    ) -> jax.Array:
        """k_proj and RoPE of the memory slots: [B, S, g*g, kv] -> [B, S, g*g, H, D].

        As apply_rotary_enc(repeat_freqs_k=True): every memory frame is rotated like the
        queries. With ``slot_by_slot`` (CPU), one slot at a time, and slots empty in every
        batch element (early frames) are left zero instead of computed, as the official
        code never sees them.
        """
        project = lambda x: apply_rope(self._heads(self.k_proj(x)), *rope)
        if not slot_by_slot:
            return project(keys)

        def one(slot: tuple[jax.Array, jax.Array]) -> jax.Array:
            x, alive = slot
            out = jax.eval_shape(project, x)
            return jax.lax.cond(alive, project, lambda x: jnp.zeros(out.shape, out.dtype), x)

        return jnp.moveaxis(jax.lax.map(one, (jnp.moveaxis(keys, 1, 0), valid.any(axis=0))), 0, 1)

    def _raw_values(self, x: jax.Array) -> jax.Array:
        """[..., kv_in_dim] -> [..., heads, kv_in_dim]: every head weights the raw memory.

        Without attention dropout every softmax row sums to 1, so P @ (m W + b) = (P @ m) W + b:
        the weighted sum runs over the kv_in_dim raw channels (64 instead of 256 projected: a
        quarter of that work, and no v_proj over the ~28k memory tokens), then
        :meth:`_project_values` applies v_proj to the output. Dropped-out rows no longer sum
        to 1, so training with dropout projects the values first, as the official module.
        """
        return jnp.broadcast_to(x[..., None, :], (*x.shape[:-1], self.num_heads, x.shape[-1]))

    def _project_values(self, out: jax.Array) -> jax.Array:
        """Each head's v_proj columns on its weighted raw values: [B, N, H, kv] -> [B, N, H, D]."""
        kernel = (
            self.v_proj.kernel[...].astype(out.dtype).reshape(out.shape[-1], self.num_heads, -1)
        )
        bias = self.v_proj.bias[...].astype(out.dtype).reshape(self.num_heads, -1)
        return jnp.einsum("bnhk,khd->bnhd", out, kernel) + bias
