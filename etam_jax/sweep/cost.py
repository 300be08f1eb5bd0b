"""Per-frame cost of the memory attention: XLA's FLOP count and steady-state latency.

The memory attention is the only part of the model memory pooling changes,
so the sweep measures it alone, at the point's resolution, with a full bank:
``num_maskmem`` spatial memories (1 conditioning frame + ``num_maskmem - 1``
recent ones, as the tracker attends on every frame after the sixth) and
``max_obj_ptrs_in_encoder`` object pointers of ``d_model / kv_in_dim``
tokens each, every slot valid, one object (batch 1).

FLOPs: ``jax.jit(...).lower(...).compile().cost_analysis()["flops"]``. XLA
counts a while loop's body once, whatever its trip count, and on CPU long
attentions run as a loop over query blocks
(:func:`~etam_jax.models.blocked_attention.auto_query_chunk`: grids above
32). The count is a quadratic polynomial in the number of tokens ``N = g*g``
(every term is ``N`` or ``N * keys``, keys linear in ``N``), so there it is
read off XLA's counts at the three smallest grids the window divides (all
single-call attention) and evaluated at ``g``: within 2e-6 of a direct
count at g = 32. Accelerators never loop, so there the count is direct.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from flax import nnx

from etam_jax.models.blocked_attention import auto_query_chunk
from etam_jax.models.configs import feature_grid
from etam_jax.models.memory_attention import MemoryAttention

# Grids whose attentions XLA counts as one call (N <= 4 * CPU_QUERY_CHUNK); the fit takes the three
# smallest the pooling window divides (a quadratic through exact counts: measured within 2e-6 at g=32).
_FIT_GRIDS = (8, 12, 16, 20, 24, 28, 32)


def bank_shapes(cfg: ml_collections.ConfigDict, grid: int) -> dict[str, jax.ShapeDtypeStruct]:
    """The memory attention's inputs for one object and a full bank, as shapes.

    Args:
      cfg: a model config (``get_model_config``).
      grid: side ``g`` of the feature grid.
    """
    ma = cfg.memory_attention
    n, slots = grid * grid, cfg.num_maskmem
    ptrs = cfg.max_obj_ptrs_in_encoder * (ma.d_model // ma.kv_in_dim)
    f32 = lambda *shape: jax.ShapeDtypeStruct(shape, jnp.float32)
    valid = lambda *shape: jax.ShapeDtypeStruct(shape, jnp.bool_)
    return {
        "curr": f32(1, n, ma.d_model),
        "curr_pos": f32(1, n, ma.d_model),
        "memory": f32(1, slots, n, ma.kv_in_dim),
        "memory_pos": f32(1, slots, n, ma.kv_in_dim),
        "memory_valid": valid(1, slots),
        "ptr": f32(1, ptrs, ma.kv_in_dim),
        "ptr_pos": f32(1, ptrs, ma.kv_in_dim),
        "ptr_valid": valid(1, ptrs),
    }


def _jitted(cfg: ml_collections.ConfigDict, grid: int) -> tuple[Callable, nnx.State]:
    """``(jit(fn)(params, inputs), abstract params)`` of the memory attention at ``grid``."""
    with nnx.use_eager_sharding(False):
        model = nnx.eval_shape(
            lambda: MemoryAttention(cfg.memory_attention, grid, rngs=nnx.Rngs(0))
        )
    graphdef, params = nnx.split(model)
    return jax.jit(lambda params, inputs: nnx.merge(graphdef, params)(**inputs)), params


def xla_flops(cfg: ml_collections.ConfigDict, grid: int) -> float:
    """XLA's FLOP count of one memory-attention call at ``grid`` (no extrapolation)."""
    fn, params = _jitted(cfg, grid)
    return float(fn.lower(params, bank_shapes(cfg, grid)).compile().cost_analysis()["flops"])


def memory_attention_flops(cfg: ml_collections.ConfigDict) -> float:
    """FLOPs of the memory attention per frame at ``cfg.image_size`` (see the module docstring)."""
    grid = feature_grid(cfg)
    if auto_query_chunk(grid * grid) is None:
        return xla_flops(cfg, grid)
    window = cfg.memory_attention.pool_window
    fit = [g for g in _FIT_GRIDS if g % window == 0][:3]  # the smallest: quickest to compile
    tokens = np.array([g * g for g in fit], np.float64)
    coeffs = np.polyfit(tokens, [xla_flops(cfg, g) for g in fit], 2)
    return float(np.polyval(coeffs, grid * grid))


def random_inputs(shapes: dict[str, jax.ShapeDtypeStruct], seed: int = 0) -> dict[str, jax.Array]:
    """Standard-normal floats and all-true masks of ``shapes``."""
    rng = np.random.default_rng(seed)
    make = lambda s: (
        np.ones(s.shape, bool) if s.dtype == jnp.bool_ else rng.standard_normal(s.shape, np.float32)
    )
    return {name: jnp.asarray(make(s)) for name, s in shapes.items()}


def memory_attention_latency(
    cfg: ml_collections.ConfigDict, repeats: int = 5
) -> tuple[float, float]:
    """Steady-state seconds per memory-attention call at ``cfg.image_size``, and the compile time.

    Random weights (the cost does not depend on them); the median of
    ``repeats`` calls after one warm-up call that compiles.
    """
    grid = feature_grid(cfg)
    fn, params = _jitted(cfg, grid)
    params = jax.tree.map(lambda s: jnp.full(s.shape, 0.01, s.dtype), params)
    inputs = random_inputs(bank_shapes(cfg, grid))
    start = time.perf_counter()
    jax.block_until_ready(fn(params, inputs))
    compile_s = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(params, inputs))
        times.append(time.perf_counter() - start)
    return statistics.median(times), compile_s
