"""Memory-attention FLOPs from XLA against a count by hand, and the latency measurement."""

import pytest

from etam_jax.models.configs import get_model_config
from etam_jax.sweep.cost import (
    memory_attention_flops,
    memory_attention_latency,
    xla_flops,
)

# Shapes of every official config: width, memory width, FFN width, layers, bank (7 slots, 16 pointers x 4 tokens).
D, KV, FFN, LAYERS, SLOTS, PTR_TOKENS = 256, 64, 2048, 4, 7, 64


def config(image_size: int, window: int, correction: str):
    cfg = get_model_config("efficienttam_ti", image_size)
    cfg.memory_attention.pool_window = window
    cfg.memory_attention.pool_correction = correction
    return cfg


def attended_keys(n: int, window: int) -> int:
    """Spatial keys one query sees: every slot's n tokens, or n / w^2 each once pooled. The pooled
    buffer is never shorter than one unpooled slot (it also serves the one-memory fallback)."""
    return SLOTS * n if window == 1 else max(n, SLOTS * n // window**2)


def cross_attention_flops(n: int, window: int) -> int:
    """q k^T and attention x v of one layer's memory cross-attention (2 flops per multiply-add)."""
    return 2 * 2 * n * (attended_keys(n, window) + PTR_TOKENS) * D


def matmul_flops(grid: int, window: int) -> int:
    """Every matrix product of the memory attention, counted by hand."""
    n = grid * grid
    self_attn = 4 * 2 * n * D * D + 2 * 2 * n * n * D  # q, k, v, out projections; q k^T, a v
    # q, out projections; k, v projections of the whole bank
    cross_proj = 2 * 2 * n * D * D + 2 * 2 * (SLOTS * n + PTR_TOKENS) * KV * D
    ffn = 2 * 2 * n * D * FFN
    return LAYERS * (self_attn + cross_proj + cross_attention_flops(n, window) + ffn)


@pytest.fixture(scope="module")
def flops_at_grid_8():
    return {
        (w, c): xla_flops(config(128, w, c), 8) for w, c in ((1, "none"), (2, "eq5"), (2, "eq6"))
    }


def test_xla_flops_match_the_count_by_hand(flops_at_grid_8):
    for (window, _), flops in flops_at_grid_8.items():
        # The rest: norms, softmax, RoPE, pooling.
        assert flops == pytest.approx(matmul_flops(8, window), rel=0.03)


def test_pooling_by_2_saves_the_cross_attention_share(flops_at_grid_8):
    saved = flops_at_grid_8[1, "none"] - flops_at_grid_8[2, "eq5"]
    want = LAYERS * (cross_attention_flops(64, 1) - cross_attention_flops(64, 2))
    assert saved == pytest.approx(want, rel=0.03)
    # The cross-attention itself shrinks to (7 * 64 / 4 + 64) / (7 * 64 + 64) = 0.31 of its keys.
    assert cross_attention_flops(64, 2) / cross_attention_flops(64, 1) == pytest.approx(176 / 512)
    assert flops_at_grid_8[2, "eq6"] == pytest.approx(flops_at_grid_8[2, "eq5"], rel=1e-3)


def test_flops_of_grids_attended_in_query_blocks_are_extrapolated_exactly():
    # At image 768 (grid 48) the CPU attention loops over query blocks, whose body XLA counts once.
    assert memory_attention_flops(config(768, 2, "eq5")) == pytest.approx(
        matmul_flops(48, 2), rel=0.03
    )


def test_latency_is_a_positive_steady_state_time():
    seconds, compile_s = memory_attention_latency(config(64, 2, "eq5"), repeats=2)
    assert 0 < seconds < 10 and compile_s > 0
