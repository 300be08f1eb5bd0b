"""Memory-attention FLOPs from XLA against a count by hand, and the latency measurement."""

import pytest

from etam_jax.models.configs import get_model_config
from etam_jax.sweep.cost import (
    memory_attention_flops,
    memory_attention_latency,
    xla_flops,
)

# Shapes of every official config: width, memory width, FFN width, layers, bank (7 slots, 16
# pointers x 4 tokens).
D, KV, FFN, LAYERS, SLOTS, PTR_TOKENS = 256, 64, 2048, 4, 7, 64
# Two exact ways to apply v_proj: on every memory token before the attention (as the official
# module), or on the output after it ("folded": softmax rows sum to 1 without dropout). The count
# by hand is made for both; XLA's figure must match one of them.
VALUE_PATHS = (False, True)


def config(image_size: int, window: int, correction: str):
    cfg = get_model_config("efficienttam_ti", image_size)
    cfg.memory_attention.pool_window = window
    cfg.memory_attention.pool_correction = correction
    return cfg


def attended_keys(n: int, window: int) -> int:
    """Keys one query sees: every slot's n tokens (n / w^2 once pooled) and the pointers. The
    pooled buffer is never shorter than one unpooled slot (it also serves the one-memory case)."""
    spatial = SLOTS * n if window == 1 else max(n, SLOTS * n // window**2)
    return spatial + PTR_TOKENS


def cross_attention_flops(n: int, window: int, folded: bool) -> int:
    """q k^T and weights x values of one layer's memory cross-attention (2 flops per mul-add)."""
    return 2 * n * attended_keys(n, window) * (D + (KV if folded else D))


def matmul_flops(grid: int, window: int, folded: bool) -> int:
    """Every matrix product of the memory attention, counted by hand."""
    n = grid * grid
    self_attn = 4 * 2 * n * D * D + 2 * 2 * n * n * D  # q, k, v, out projections; q k^T, a v
    bank = SLOTS * n + PTR_TOKENS
    # q, out and k projections; v_proj on the output (folded) or on the whole bank.
    cross_proj = 2 * 2 * n * D * D + 2 * bank * KV * D + 2 * (n if folded else bank) * KV * D
    ffn = 2 * 2 * n * D * FFN
    return LAYERS * (self_attn + cross_proj + cross_attention_flops(n, window, folded) + ffn)


@pytest.fixture(scope="module")
def flops_at_grid_8():
    points = ((1, "none"), (2, "eq5"), (2, "eq6"))
    return {(w, c): xla_flops(config(128, w, c), 8) for w, c in points}


@pytest.fixture(scope="module")
def folded(flops_at_grid_8):
    """The value path whose count by hand is nearest XLA's figure without pooling."""
    error = lambda f: abs(flops_at_grid_8[1, "none"] / matmul_flops(8, 1, f) - 1)
    return min(VALUE_PATHS, key=error)


def test_xla_flops_match_the_count_by_hand(flops_at_grid_8, folded):
    for (window, _), flops in flops_at_grid_8.items():
        # The rest: norms, softmax, RoPE, pooling (the two value paths differ by 7-10% here).
        assert flops == pytest.approx(matmul_flops(8, window, folded), rel=0.03)


def test_pooling_by_2_saves_the_cross_attention_share(flops_at_grid_8, folded):
    saved = flops_at_grid_8[1, "none"] - flops_at_grid_8[2, "eq5"]
    want = LAYERS * (cross_attention_flops(64, 1, folded) - cross_attention_flops(64, 2, folded))
    assert saved == pytest.approx(want, rel=0.03)
    # The cross-attention itself shrinks to (7 * 64 / 4 + 64) / (7 * 64 + 64) = 0.34 of its keys.
    ratio = cross_attention_flops(64, 2, folded) / cross_attention_flops(64, 1, folded)
    assert ratio == pytest.approx(176 / 512)
    assert flops_at_grid_8[2, "eq6"] == pytest.approx(flops_at_grid_8[2, "eq5"], rel=1e-3)


def test_flops_of_grids_attended_in_query_blocks_are_extrapolated_exactly(folded):
    # At image 768 (grid 48) the CPU attention loops over query blocks, whose body XLA counts once.
    flops = memory_attention_flops(config(768, 2, "eq5"))
    assert flops == pytest.approx(matmul_flops(48, 2, folded), rel=0.03)


def test_latency_is_a_positive_steady_state_time():
    seconds, compile_s = memory_attention_latency(config(64, 2, "eq5"), repeats=2)
    assert 0 < seconds < 10 and compile_s > 0
