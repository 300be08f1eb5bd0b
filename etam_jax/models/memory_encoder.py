"""The memory encoder (official ``sam2.modeling.memory_encoder``), channel-last.

Downsamples the (high-resolution) mask by the backbone stride, 16 (``MaskDownSampler``), adds it to
the projected pixel features, fuses with two ConvNeXt blocks (``Fuser`` of
``CXBlock``), projects to the memory width and attaches a sine position
encoding. Keys: ``mask_downsampler.encoder.{i}``, ``pix_feat_proj``,
``fuser.layers.{i}``, ``out_proj``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx
from jaxtyping import Array, Float

from etam_jax.errors import EtamError
from etam_jax.models.layers import conv, gelu, layer_norm, linear
from etam_jax.models.position_encoding import PositionEmbeddingSine

# As sam2_utils.LayerNorm2d's default eps (used by MaskDownSampler and CXBlock).
LAYER_NORM_2D_EPS = 1e-6
# The official yaml's mask_downsampler (kernel 3, stride 2, padding 1; total stride 16 by default).
MASK_KERNEL, MASK_STRIDE, MASK_PADDING, MASK_TOTAL_STRIDE = 3, 2, 1, 16
# CXBlock's layer_scale_init_value.
LAYER_SCALE_INIT = 1e-6


class Gelu(nnx.Module):
    """``nn.GELU()`` as an ``nn.Sequential`` entry (no parameters; keeps the indices)."""

    def __call__(self, x: jax.Array) -> jax.Array:
        return gelu(x)


class MaskDownSampler(nnx.Module):
    """``encoder``: (conv stride s -> LayerNorm2d -> GELU) x log_s(total_stride), then a 1x1 conv.

    As ``MaskDownSampler``: channels grow by ``stride**2`` per step from 1.
    """

    def __init__(
        self,
        embed_dim: int = 256,
        kernel_size: int = MASK_KERNEL,
        stride: int = MASK_STRIDE,
        padding: int = MASK_PADDING,
        total_stride: int = MASK_TOTAL_STRIDE,
        *,
        rngs: nnx.Rngs,
        dtype=jnp.float32,
    ):
        num_layers = round(math.log(total_stride, stride))
        if stride**num_layers != total_stride:
            raise EtamError(
                f"MaskDownSampler: total_stride {total_stride} is not a power of stride {stride}"
            )
        layers, chans = [], 1
        for _ in range(num_layers):
            out = chans * stride**2
            layers.append(
                conv(
                    chans, out, kernel_size, stride=stride, padding=padding, rngs=rngs, dtype=dtype
                )
            )
            layers += [layer_norm(out, eps=LAYER_NORM_2D_EPS, rngs=rngs, dtype=dtype), Gelu()]
            chans = out
        layers.append(conv(chans, embed_dim, 1, rngs=rngs, dtype=dtype))
        self.encoder = nnx.List(layers)

    def __call__(self, x: Float[Array, "b h w 1"]) -> Float[Array, "b hs ws e"]:
        for layer in self.encoder:
            x = layer(x)
        return x


class CXBlock(nnx.Module):
    """ConvNeXt block (official ``CXBlock``): depthwise conv, LayerNorm2d, MLP, layer scale, residual."""

    def __init__(self, dim: int, kernel_size: int = 7, *, rngs: nnx.Rngs, dtype=jnp.float32):
        self.dwconv = conv(
            dim, dim, kernel_size, padding=kernel_size // 2, groups=dim, rngs=rngs, dtype=dtype
        )
        self.norm = layer_norm(dim, eps=LAYER_NORM_2D_EPS, rngs=rngs, dtype=dtype)
        self.pwconv1 = linear(dim, 4 * dim, axes=("embed", "mlp"), rngs=rngs, dtype=dtype)
        self.pwconv2 = linear(4 * dim, dim, axes=("mlp", "embed"), rngs=rngs, dtype=dtype)
        self.gamma = nnx.Param(
            jnp.full((dim,), LAYER_SCALE_INIT, jnp.float32), out_sharding=("norm",)
        )

    def __call__(self, x: Float[Array, "b h w c"]) -> Float[Array, "b h w c"]:
        y = self.pwconv2(gelu(self.pwconv1(self.norm(self.dwconv(x)))))
        return x + (self.gamma[...] * y).astype(x.dtype)


class Fuser(nnx.Module):
    """``layers``: CXBlocks in sequence (official ``Fuser`` without input projection)."""

    def __init__(
        self, dim: int, num_layers: int, kernel_size: int, *, rngs: nnx.Rngs, dtype=jnp.float32
    ):
        self.layers = nnx.List(
            [CXBlock(dim, kernel_size, rngs=rngs, dtype=dtype) for _ in range(num_layers)]
        )

    def __call__(self, x: Float[Array, "b h w c"]) -> Float[Array, "b h w c"]:
        for layer in self.layers:
            x = layer(x)
        return x


class MemoryEncoder(nnx.Module):
    """The memory encoder (official ``MemoryEncoder``).

    Args:
      cfg: ``get_model_config(...).memory_encoder`` (``out_dim``, ``fuser_layers``, ``fuser_kernel``).
      rngs: parameter initialisation.
      in_dim: channels of the pixel features.
      mask_stride: the mask downsampler's total stride, the backbone stride (16).
      dtype: compute dtype (parameters stay float32).
    """

    def __init__(
        self,
        cfg: ml_collections.ConfigDict,
        *,
        rngs: nnx.Rngs,
        in_dim: int = 256,
        mask_stride: int = MASK_TOTAL_STRIDE,
        dtype=jnp.float32,
    ):
        self.out_dim = cfg.out_dim
        self.mask_stride = mask_stride
        self.mask_downsampler = MaskDownSampler(
            in_dim, total_stride=mask_stride, rngs=rngs, dtype=dtype
        )
        self.pix_feat_proj = conv(in_dim, in_dim, 1, rngs=rngs, dtype=dtype)
        self.fuser = Fuser(in_dim, cfg.fuser_layers, cfg.fuser_kernel, rngs=rngs, dtype=dtype)
        # As MemoryEncoder.__init__: out_proj is the identity when out_dim == in_dim.
        self.out_proj = (
            conv(in_dim, cfg.out_dim, 1, rngs=rngs, dtype=dtype) if cfg.out_dim != in_dim else None
        )
        self.position_encoding = PositionEmbeddingSine(cfg.out_dim)

    def __call__(
        self,
        pix_feat: Float[Array, "b g g c"],
        masks: Float[Array, "b s s 1"],
        skip_mask_sigmoid: bool = False,
    ) -> dict[str, jax.Array]:
        """As ``MemoryEncoder.forward``.

        Args:
          pix_feat: ``[B, g, g, in_dim]`` image features.
          masks: ``[B, s g, s g, 1]`` mask logits (``s`` the backbone stride) (or, with ``skip_mask_sigmoid``, values used as is).
          skip_mask_sigmoid: feed ``masks`` without a sigmoid.

        Returns:
          ``vision_features`` ``[B, g, g, out_dim]`` and ``vision_pos_enc``
          ``[B, g, g, out_dim]`` (in the features' dtype).
        """
        s = self.mask_stride
        if masks.shape[1:3] != (s * pix_feat.shape[1], s * pix_feat.shape[2]):
            raise EtamError(
                f"MemoryEncoder: masks {tuple(masks.shape)} must be {s}x the feature grid "
                f"{tuple(pix_feat.shape[1:3])}, channel-last [B, H, W, 1]"
            )
        if not skip_mask_sigmoid:
            masks = jax.nn.sigmoid(masks)
        x = self.pix_feat_proj(pix_feat) + self.mask_downsampler(masks)
        x = self.fuser(x)
        if self.out_proj is not None:
            x = self.out_proj(x)
        return {"vision_features": x, "vision_pos_enc": self.position_encoding(x).astype(x.dtype)}
