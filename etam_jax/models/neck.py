"""The single-scale ViTDet neck (official ``backbones.image_encoder.ViTDetNeck``).

Maps the trunk's last feature map to ``d_model`` channels with conv1x1 ->
LayerNorm2d -> conv3x3 -> LayerNorm2d (keys ``convs.0.*``) and returns it with
its sine position encoding. Channel-last: ``[B, H, W, C]``.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, Float

from etam_jax.errors import EtamError
from etam_jax.models.layers import conv, layer_norm
from etam_jax.models.position_encoding import PositionEmbeddingSine

# As sam2_utils.LayerNorm2d's default eps.
LAYER_NORM_2D_EPS = 1e-6


class NeckConvs(nnx.Module):
    """One level's ``nn.Sequential``: conv_1x1, norm_0, conv_3x3, norm_1 (norms only with ``norm``).

    As ``ViTDetNeck.__init__``: the convs carry a bias only when there is no norm.
    """

    def __init__(self, in_dim: int, d_model: int, *, norm: bool, rngs: nnx.Rngs, dtype=jnp.float32):
        def norm_layer():
            return (
                layer_norm(d_model, eps=LAYER_NORM_2D_EPS, rngs=rngs, dtype=dtype) if norm else None
            )

        self.conv_1x1 = conv(in_dim, d_model, 1, use_bias=not norm, rngs=rngs, dtype=dtype)
        self.norm_0 = norm_layer()
        self.conv_3x3 = conv(
            d_model, d_model, 3, padding=1, use_bias=not norm, rngs=rngs, dtype=dtype
        )
        self.norm_1 = norm_layer()

    def __call__(self, x: Float[Array, "b h w c"]) -> Float[Array, "b h w d"]:
        for layer in (self.conv_1x1, self.norm_0, self.conv_3x3, self.norm_1):
            x = x if layer is None else layer(x)
        return x


class ViTDetNeck(nnx.Module):
    """ViTDet neck: one conv stack per trunk level; EfficientTAM has a single level.

    Args:
      d_model: output channels.
      backbone_channel_list: the trunk's output channels per level (``[embed_dim]``).
      neck_norm: ``"LN"`` (LayerNorm2d after each conv, convs without bias) or None.
      position_encoding: defaults to ``PositionEmbeddingSine(d_model)`` as in the official yaml.
    """

    def __init__(
        self,
        d_model: int,
        backbone_channel_list: Sequence[int],
        *,
        neck_norm: str | None = "LN",
        position_encoding: PositionEmbeddingSine | None = None,
        rngs: nnx.Rngs,
        dtype=jnp.float32,
    ):
        if neck_norm not in ("LN", None):
            raise EtamError(f"ViTDetNeck: neck_norm must be 'LN' or None, found {neck_norm!r}")
        self.backbone_channel_list = tuple(backbone_channel_list)
        self.position_encoding = position_encoding or PositionEmbeddingSine(d_model)
        norm = neck_norm is not None
        self.convs = nnx.List(
            [
                NeckConvs(dim, d_model, norm=norm, rngs=rngs, dtype=dtype)
                for dim in self.backbone_channel_list
            ]
        )

    def __call__(
        self, x: Float[Array, "b h w c"]
    ) -> tuple[Float[Array, "b h w d"], Float[Array, "b h w d"]]:
        """The neck features and their position encoding, both ``[B, H, W, d_model]``.

        As ``ViTDetNeck.forward``, which reads only the first level ``xs[0]``
        and returns one-element lists ``(out, pos)``; we take and return that
        level directly. The encoding is cast to the features' dtype, as there.
        """
        out = self.convs[0](x)
        return out, self.position_encoding(out).astype(out.dtype)
