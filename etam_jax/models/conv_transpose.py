"""A 2x2, stride-2 transposed convolution (torch ``nn.ConvTranspose2d(k=2, s=2)``).

With kernel size equal to stride the output windows do not overlap: every
input pixel writes its own 2x2 output block, ``out[2i+u, 2j+v] = x[i, j] @ W[:, :, u, v]``.
That is an einsum, so the kernel is kept as a bare ``weight`` in the torch
layout ``(in, out, 2, 2)`` and converts by the generic same-name rule, with no
kernel flip to get wrong (``flax.nnx.ConvTranspose`` flips relative to torch).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from einops import rearrange
from flax import nnx
from jaxtyping import Array, Float


class ConvTranspose2x2(nnx.Module):
    """Upsamples ``[B, H, W, in]`` to ``[B, 2H, 2W, out]``.

    torch ``ConvTranspose2d(in, out, kernel_size=2, stride=2)``.
    """

    def __init__(self, in_features: int, out_features: int, *, rngs: nnx.Rngs, dtype=jnp.float32):
        # torch's default init: U(-b, b), b = 1/sqrt(fan_in); fan_in = out * k * k in this layout.
        bound = 1.0 / math.sqrt(out_features * 4)

        def uniform(key: jax.Array, shape: tuple[int, ...], dtype=jnp.float32) -> jax.Array:
            return jax.random.uniform(key, shape, dtype, -bound, bound)

        weight_init = nnx.with_partitioning(uniform, ("conv_in", "conv_out", None, None))
        self.weight = nnx.Param(
            weight_init(rngs.params(), (in_features, out_features, 2, 2), jnp.float32)
        )
        bias_init = nnx.with_partitioning(nnx.initializers.zeros_init(), ("conv_out",))
        self.bias = nnx.Param(bias_init(rngs.params(), (out_features,), jnp.float32))
        self.dtype = dtype

    def __call__(self, x: Float[Array, "b h w i"]) -> Float[Array, "b hh ww o"]:
        """Args: x ``[B, H, W, in]``. Returns ``[B, 2H, 2W, out]``."""
        weight = self.weight[...].astype(self.dtype)
        y = jnp.einsum("bhwi,iouv->bhuwvo", x.astype(self.dtype), weight)
        return rearrange(y, "b h u w v o -> b (h u) (w v) o") + self.bias[...].astype(self.dtype)
