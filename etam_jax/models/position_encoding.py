"""Position encodings (official ``sam2.modeling.position_encoding``), channel-last.

- :func:`sine_position_encoding` / :class:`PositionEmbeddingSine`: the DETR-style
  sine encoding of a feature map (used on the image-encoder neck output). It
  depends only on the map's shape, so the module holds no state.
- :class:`PositionEmbeddingRandom`: SAM's random Fourier features (used by the
  prompt encoder), with the random matrix as a ``Buffer`` named like the
  torch buffer ``positional_encoding_gaussian_matrix``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, Float

from etam_jax.errors import EtamError
from etam_jax.models.variables import Buffer

# As PositionEmbeddingSine.forward: normalised positions divide by (last + eps).
_SINE_EPS = 1e-6


def _interleave_sin_cos(pos: jax.Array) -> jax.Array:
    """(..., F) angles -> (..., F): sin of even channels and cos of odd ones, interleaved.

    As ``torch.stack((p[..., 0::2].sin(), p[..., 1::2].cos()), -1).flatten(-2)``.
    """
    pairs = jnp.stack([jnp.sin(pos[..., 0::2]), jnp.cos(pos[..., 1::2])], axis=-1)
    return pairs.reshape(*pos.shape[:-1], -1)


def sine_position_encoding(
    batch: int,
    height: int,
    width: int,
    num_pos_feats: int,
    *,
    temperature: float = 10000,
    normalize: bool = True,
    scale: float | None = None,
) -> Float[Array, "b h w c"]:
    """The sine encoding of a ``(batch, height, width)`` grid, float32.

    As ``PositionEmbeddingSine.forward``, channel-last: the first half of the
    channels encodes y, the second half x.

    Args:
      batch, height, width: the feature-map shape.
      num_pos_feats: output channels (even).
      temperature: frequency base.
      normalize: scale positions to (0, scale] first.
      scale: the normalised range (2 pi if None; requires ``normalize``).

    Returns:
      ``[batch, height, width, num_pos_feats]`` float32.
    """
    scale = _check_sine_args(num_pos_feats, normalize, scale)
    half = num_pos_feats // 2
    y = jnp.arange(1, height + 1, dtype=jnp.float32)
    x = jnp.arange(1, width + 1, dtype=jnp.float32)
    if normalize:
        y = y / (y[-1] + _SINE_EPS) * scale
        x = x / (x[-1] + _SINE_EPS) * scale
    dim_t = jnp.arange(half, dtype=jnp.float32)
    dim_t = jnp.power(jnp.float32(temperature), 2 * (dim_t // 2) / half)
    pos_y = _interleave_sin_cos(y[:, None] / dim_t)  # (h, half)
    pos_x = _interleave_sin_cos(x[:, None] / dim_t)  # (w, half)
    pos = jnp.concatenate(
        [
            jnp.broadcast_to(pos_y[:, None], (height, width, half)),
            jnp.broadcast_to(pos_x[None], (height, width, half)),
        ],
        axis=-1,
    )
    return jnp.broadcast_to(pos[None], (batch, height, width, num_pos_feats))


def _check_sine_args(num_pos_feats: int, normalize: bool, scale: float | None) -> float:
    """Validates the sine-encoding arguments; returns the effective scale."""
    if num_pos_feats % 2:
        raise EtamError(f"PositionEmbeddingSine: num_pos_feats must be even, found {num_pos_feats}")
    if scale is not None and not normalize:
        raise EtamError(
            "PositionEmbeddingSine: scale was given but normalize is False (expected True)"
        )
    return 2 * math.pi if scale is None else scale


class PositionEmbeddingSine(nnx.Module):
    """Sine position encoding of a channel-last feature map (no parameters)."""

    def __init__(
        self,
        num_pos_feats: int,
        temperature: float = 10000,
        normalize: bool = True,
        scale: float | None = None,
    ):
        _check_sine_args(num_pos_feats, normalize, scale)
        self.scale = scale
        self.num_pos_feats = num_pos_feats
        self.temperature = temperature
        self.normalize = normalize

    def __call__(self, x: Float[Array, "b h w c"]) -> Float[Array, "b h w p"]:
        """Args: x [B, H, W, C], only its shape is used. Returns [B, H, W, num_pos_feats] f32."""
        b, h, w = x.shape[:3]
        return sine_position_encoding(
            b,
            h,
            w,
            self.num_pos_feats,
            temperature=self.temperature,
            normalize=self.normalize,
            scale=self.scale,
        )


class PositionEmbeddingRandom(nnx.Module):
    """Random spatial-frequency encoding (SAM); output channels ``2 * num_pos_feats``."""

    def __init__(self, num_pos_feats: int = 64, scale: float | None = None, *, rngs: nnx.Rngs):
        scale = 1.0 if scale is None or scale <= 0.0 else scale
        matrix = scale * jax.random.normal(rngs.params(), (2, num_pos_feats), jnp.float32)
        self.positional_encoding_gaussian_matrix = Buffer(matrix, out_sharding=(None, None))

    def _pe_encoding(self, coords: Float[Array, "... 2"]) -> Float[Array, "... c"]:
        """Encodes (x, y) points normalised to [0, 1] (as ``_pe_encoding``)."""
        coords = 2 * coords - 1
        coords = coords @ self.positional_encoding_gaussian_matrix[...]
        coords = 2 * math.pi * coords
        return jnp.concatenate([jnp.sin(coords), jnp.cos(coords)], axis=-1)

    def __call__(self, size: tuple[int, int]) -> Float[Array, "h w c"]:
        """The encoding of pixel centres of an ``(h, w)`` grid: ``[h, w, 2 * num_pos_feats]``."""
        h, w = size
        y = (jnp.arange(h, dtype=jnp.float32) + 0.5) / h
        x = (jnp.arange(w, dtype=jnp.float32) + 0.5) / w
        grid = jnp.stack(jnp.broadcast_arrays(x[None, :], y[:, None]), axis=-1)
        return self._pe_encoding(grid)

    def forward_with_coords(
        self, coords: Float[Array, "b n 2"], image_size: tuple[int, int]
    ) -> Float[Array, "b n c"]:
        """Encodes (x, y) pixel coordinates in an image of ``image_size = (h, w)``.

        Args:
          coords: ``[B, N, 2]`` points, x first, in pixels.
          image_size: ``(h, w)`` of the image the coordinates refer to.

        Returns:
          ``[B, N, 2 * num_pos_feats]`` float32.
        """
        h, w = image_size
        coords = jnp.asarray(coords, jnp.float32) / jnp.array([w, h], jnp.float32)
        return self._pe_encoding(coords)
