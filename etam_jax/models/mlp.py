"""The SAM-style MLP (official ``sam2_utils.MLP``; keys ``layers.{i}``)."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
from flax import nnx

from etam_jax.models.layers import linear


class MLP(nnx.Module):
    """``num_layers`` Linear layers with ``activation`` between them.

    Args:
      input_dim, hidden_dim, output_dim: widths.
      num_layers: number of Linear layers (>= 1).
      activation: applied after every layer but the last (ReLU by default).
      sigmoid_output: apply a sigmoid to the output.
    """

    def __init__(
        self,
        input_dim: int,
        hidden_dim: int,
        output_dim: int,
        num_layers: int,
        *,
        rngs: nnx.Rngs,
        activation: Callable[[jax.Array], jax.Array] = jax.nn.relu,
        sigmoid_output: bool = False,
        dtype=jnp.float32,
    ):
        dims = [input_dim] + [hidden_dim] * (num_layers - 1) + [output_dim]
        axes = [("embed", "mlp")] + [("mlp", "mlp")] * (num_layers - 2) + [("mlp", "embed")]
        if num_layers == 1:
            axes = [("embed", "embed")]
        self.layers = nnx.List(
            [
                linear(i, o, axes=a, rngs=rngs, dtype=dtype)
                for i, o, a in zip(dims[:-1], dims[1:], axes)
            ]
        )
        self.activation = activation
        self.sigmoid_output = sigmoid_output

    def __call__(self, x: jax.Array) -> jax.Array:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = self.activation(x)
        return jax.nn.sigmoid(x) if self.sigmoid_output else x
