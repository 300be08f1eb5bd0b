"""Layer factories that attach logical axis names to every parameter.

Every model file builds its Linear/Conv/LayerNorm through these, so each
parameter carries logical names that ``training/sharding.py`` maps onto the
mesh. The names used: ``embed`` (model width), ``mlp`` (hidden width),
``heads`` (attention q/k/v output), ``kv`` (key/value input width),
``conv_in``/``conv_out`` (conv channels), ``norm`` (normalised width),
``tokens`` (learned token rows), ``pos`` (position rows).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

_KERNEL_INIT = nnx.initializers.lecun_normal()
_ZEROS = nnx.initializers.zeros_init()
_ONES = nnx.initializers.ones_init()


def linear(
    in_features: int,
    out_features: int,
    *,
    axes: tuple[str | None, str | None],
    rngs: nnx.Rngs,
    use_bias: bool = True,
    dtype=jnp.float32,
) -> nnx.Linear:
    """``nnx.Linear`` whose kernel (in, out) carries ``axes`` and bias ``axes[1]``."""
    return nnx.Linear(
        in_features,
        out_features,
        use_bias=use_bias,
        dtype=dtype,
        param_dtype=jnp.float32,
        kernel_init=nnx.with_partitioning(_KERNEL_INIT, axes),
        bias_init=nnx.with_partitioning(_ZEROS, (axes[1],)),
        rngs=rngs,
    )


def conv(
    in_features: int,
    out_features: int,
    kernel_size: int,
    *,
    rngs: nnx.Rngs,
    stride: int = 1,
    padding: int | str = 0,
    groups: int = 1,
    use_bias: bool = True,
    dtype=jnp.float32,
) -> nnx.Conv:
    """NHWC ``nnx.Conv`` with torch-style integer padding; kernel HWIO."""
    pad = padding if isinstance(padding, str) else [(padding, padding)] * 2
    return nnx.Conv(
        in_features,
        out_features,
        (kernel_size, kernel_size),
        strides=(stride, stride),
        padding=pad,
        feature_group_count=groups,
        use_bias=use_bias,
        dtype=dtype,
        param_dtype=jnp.float32,
        kernel_init=nnx.with_partitioning(_KERNEL_INIT, (None, None, "conv_in", "conv_out")),
        bias_init=nnx.with_partitioning(_ZEROS, ("conv_out",)),
        rngs=rngs,
    )


def layer_norm(dim: int, *, rngs: nnx.Rngs, eps: float = 1e-5, dtype=jnp.float32) -> nnx.LayerNorm:
    """LayerNorm over the last axis (torch ``LayerNorm``; ``LayerNorm2d`` in NHWC, eps 1e-6)."""
    return nnx.LayerNorm(
        dim,
        epsilon=eps,
        dtype=dtype,
        param_dtype=jnp.float32,
        scale_init=nnx.with_partitioning(_ONES, ("norm",)),
        bias_init=nnx.with_partitioning(_ZEROS, ("norm",)),
        rngs=rngs,
    )


def param(
    rngs: nnx.Rngs, shape: tuple[int, ...], axes: tuple[str | None, ...], std: float = 0.02
) -> nnx.Param:
    """A bare parameter (tokens, embeddings), truncated-normal initialised."""
    init = nnx.with_partitioning(nnx.initializers.truncated_normal(std), axes)
    return nnx.Param(init(rngs.params(), shape, jnp.float32))


def embedding(num_embeddings: int, features: int, *, rngs: nnx.Rngs) -> nnx.Embed:
    """``nnx.Embed`` (torch ``nn.Embedding``, N(0, 1) init) whose table carries ("tokens", "embed")."""
    init = nnx.with_partitioning(nnx.initializers.normal(1.0), ("tokens", "embed"))
    return nnx.Embed(
        num_embeddings, features, param_dtype=jnp.float32, embedding_init=init, rngs=rngs
    )


def gelu(x: jax.Array) -> jax.Array:
    """torch ``nn.GELU()``: the exact (erf) form, not JAX's default tanh approximation."""
    return jax.nn.gelu(x, approximate=False)
