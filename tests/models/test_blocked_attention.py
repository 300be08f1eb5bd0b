"""Query-blocked attention with a per-key bias and mask vs a numpy float64 reference."""

import jax.numpy as jnp
import numpy as np
import pytest

from etam_jax.models.blocked_attention import chunked_dot_product_attention
from tests.official_reference import relative_error

B, N, M, H, D = 3, 32, 24, 2, 16


def _reference(q, k, v, bias, mask):
    """softmax(q k^T / sqrt(d) + bias, masked keys excluded; all-masked row -> mean of v)."""
    q, k, v = (x.astype(np.float64) for x in (q, k, v))
    logits = np.einsum("bnhd,bmhd->bhnm", q, k) / np.sqrt(D)
    if bias is not None:
        logits = logits + bias
    if mask is not None:
        logits = np.where(mask, logits, -np.inf)
        logits = np.where(mask.any(-1, keepdims=True), logits, 0.0)  # all masked: uniform
    weights = np.exp(logits - logits.max(-1, keepdims=True))
    return np.einsum("bhnm,bmhd->bnhd", weights / weights.sum(-1, keepdims=True), v)


def _case(seed: int):
    rng = np.random.default_rng(seed)
    q, k, v = (rng.standard_normal((B, n, H, D)).astype(np.float32) for n in (N, M, M))
    bias = rng.standard_normal((B, 1, 1, M)).astype(np.float32) * 2
    mask = rng.random((B, 1, 1, M)) < 0.6
    mask[1] = False  # element 1: every key masked
    return q, k, v, bias, mask


@pytest.mark.parametrize("chunk", [None, 8, 16])
@pytest.mark.parametrize("with_bias,with_mask", [(True, True), (True, False), (False, True)])
def test_chunked_attention_with_bias_and_mask_matches_reference(chunk, with_bias, with_mask):
    q, k, v, bias, mask = _case(seed=11)
    bias, mask = (bias if with_bias else None), (mask if with_mask else None)
    out = chunked_dot_product_attention(
        *(jnp.asarray(x) for x in (q, k, v)),
        chunk,
        bias=None if bias is None else jnp.asarray(bias),
        mask=None if mask is None else jnp.asarray(mask),
    )
    assert relative_error(out, _reference(q, k, v, bias, mask)) < 1e-5


@pytest.mark.parametrize("key_block", [None, 8])
def test_chunked_attention_bfloat16_keeps_dtype(key_block):
    q, k, v, bias, mask = _case(seed=12)
    args = [jnp.asarray(x, jnp.bfloat16) for x in (q, k, v)]
    out = chunked_dot_product_attention(
        *args, 8, bias=jnp.asarray(bias), mask=jnp.asarray(mask), key_block=key_block
    )
    assert out.dtype == jnp.bfloat16
    assert relative_error(np.asarray(out, np.float32), _reference(q, k, v, bias, mask)) < 2e-2


@pytest.mark.parametrize("key_block", [5, 8, 16])
def test_key_blocks_masked_for_the_whole_batch_are_skipped_with_the_same_result(key_block):
    q, k, v, bias, mask = _case(seed=13)
    mask[:, ..., 8:16] = False  # keys 8..15 masked everywhere: blocks there are skipped
    mask[1] = True
    mask[1, ..., 8:16] = False
    if key_block == 8:  # keys 8..15 form one skipped block: garbage there must not leak
        k[:, 8:16], v[:, 8:16] = 1e30, np.nan
    args = [jnp.asarray(x) for x in (q, k, v)]
    out = chunked_dot_product_attention(
        *args, 8, bias=jnp.asarray(bias), mask=jnp.asarray(mask), key_block=key_block
    )
    ref_kv = [np.where(np.arange(M)[None, :, None, None] // 8 == 1, 0, x) for x in (k, v)]
    assert relative_error(out, _reference(q, *ref_kv, bias, mask)) < 1e-5
