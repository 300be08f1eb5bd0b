"""EfficientTAM's image encoder: ViT trunk + ViTDet neck.

Official ``sam2.modeling.backbones.image_encoder.ImageEncoder`` with ``scalp=0``.

State paths ``trunk.*`` and ``neck.*`` are the official ``image_encoder.trunk.*``
and ``image_encoder.neck.*`` without the prefix (convert with
``prefix="image_encoder."``).
"""

from __future__ import annotations

import jax.numpy as jnp
import ml_collections
from flax import nnx
from jaxtyping import Array, Float

from etam_jax.errors import EtamError
from etam_jax.models.neck import ViTDetNeck
from etam_jax.models.vit import ViT


class ImageEncoder(nnx.Module):
    """Images -> stride-16 features and their sine position encoding.

    Args:
      cfg: a model config from ``etam_jax.models.configs.get_model_config``;
        reads ``image_size``, ``image_encoder.d_model`` and ``image_encoder.trunk.*``.
      rngs: initialisation randomness.
      dtype: compute dtype (parameters stay float32).
    """

    def __init__(self, cfg: ml_collections.ConfigDict, *, rngs: nnx.Rngs, dtype=jnp.float32):
        trunk = cfg.image_encoder.trunk
        self.image_size = cfg.image_size
        self.trunk = ViT(
            patch_size=trunk.patch_size,
            embed_dim=trunk.embed_dim,
            depth=trunk.depth,
            num_heads=trunk.num_heads,
            mlp_ratio=trunk.mlp_ratio,
            window_size=trunk.window_size,
            window_block_indexes=tuple(trunk.window_block_indexes),
            pretrain_img_size=trunk.pretrain_img_size,
            rngs=rngs,
            dtype=dtype,
        )
        # As the official yaml: neck_norm LN, backbone_channel_list [embed_dim], sine of d_model.
        self.neck = ViTDetNeck(
            cfg.image_encoder.d_model, [trunk.embed_dim], neck_norm="LN", rngs=rngs, dtype=dtype
        )

    def __call__(self, images: Float[Array, "b h w 3"]) -> dict[str, Float[Array, "b g g d"]]:
        """Encodes normalised images.

        As ``ImageEncoder.forward`` with ``scalp=0``. The official output's
        ``backbone_fpn`` and ``vision_pos_enc`` are one-element lists of
        ``[B, 256, g, g]`` maps for EfficientTAM (``backbone_fpn[0]`` is
        ``vision_features``); we return the single level as arrays.

        Args:
          images: ``[B, image_size, image_size, 3]`` float32, ImageNet-normalised.

        Returns:
          ``vision_features`` and ``vision_pos_enc``, each ``[B, g, g, d_model]``
          with ``g = image_size / 16``, in the compute dtype.
        """
        if tuple(images.shape[1:]) != (self.image_size, self.image_size, 3):
            raise EtamError(
                f"ImageEncoder: images must be [B, {self.image_size}, {self.image_size}, 3], "
                f"found {list(images.shape)}"
            )
        features, pos = self.neck(self.trunk(images.astype(self.trunk.dtype)))
        return {"vision_features": features, "vision_pos_enc": pos}
