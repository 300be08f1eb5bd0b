"""The EfficientTAM model: every component under the official ``SAM2Base`` names.

Attribute names equal the official top-level modules and parameters, so the
generic converter rule maps the whole state dict. The per-frame logic that
reads and writes memory lives in ``tracker.py`` (frame step) and
``sam_heads.py`` (SAM heads); here are the pieces tied to the parameters:
memory conditioning (``_prepare_memory_conditioned_features``) and memory
encoding (``_encode_new_memory``).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
from flax import nnx

from etam_jax.models.configs import backbone_stride, check_widths, feature_grid
from etam_jax.models.image_encoder import ImageEncoder
from etam_jax.models.layers import conv, param
from etam_jax.models.mask_decoder import build_mask_decoder
from etam_jax.models.memory_attention import MemoryAttention
from etam_jax.models.memory_bank import SelectedMemories
from etam_jax.models.memory_encoder import MemoryEncoder
from etam_jax.models.mlp import MLP
from etam_jax.models.prompt_encoder import build_prompt_encoder


class EfficientTAM(nnx.Module):
    """EfficientTAM (official ``SAM2Base`` with a ViT image encoder).

    Args:
      cfg: a config from ``etam_jax.models.configs.get_model_config``.
      rngs: initialisation randomness.
      apply_postprocessing: as the official ``build_sam2_video_predictor``:
        the mask decoder falls back to the best multimask output when the
        single mask is unstable (``dynamic_multimask_via_stability``).
    """

    def __init__(
        self,
        cfg: ml_collections.ConfigDict,
        *,
        rngs: nnx.Rngs,
        apply_postprocessing: bool = False,
    ):
        check_widths(cfg)
        grid, hidden = feature_grid(cfg), cfg.memory_attention.d_model
        mem_dim = cfg.memory_encoder.out_dim
        dtype = jnp.dtype(cfg.get("dtype", "float32"))  # compute dtype; parameters stay float32
        self.image_size = cfg.image_size
        self.backbone_stride = stride = backbone_stride(cfg)
        self.num_maskmem = cfg.num_maskmem
        self.max_obj_ptrs_in_encoder = cfg.max_obj_ptrs_in_encoder
        self.sigmoid_scale_for_mem_enc = cfg.sigmoid_scale_for_mem_enc
        self.sigmoid_bias_for_mem_enc = cfg.sigmoid_bias_for_mem_enc
        self.image_encoder = ImageEncoder(cfg, rngs=rngs, dtype=dtype)
        # Image-size masks -> the prompt encoder's mask input (4 g): 4 x 4, stride 4, at stride 16.
        self.mask_downsample = conv(1, 1, stride // 4, stride=stride // 4, rngs=rngs, dtype=dtype)
        self.memory_attention = MemoryAttention(cfg.memory_attention, grid, rngs=rngs, dtype=dtype)
        self.memory_encoder = MemoryEncoder(
            cfg.memory_encoder, rngs=rngs, in_dim=hidden, mask_stride=stride, dtype=dtype
        )
        self.maskmem_tpos_enc = param(
            rngs, (cfg.num_maskmem, 1, 1, mem_dim), (None, None, None, "embed")
        )
        self.no_mem_embed = param(rngs, (1, 1, hidden), (None, None, "embed"))
        self.no_mem_pos_enc = param(rngs, (1, 1, hidden), (None, None, "embed"))
        self.no_obj_ptr = param(rngs, (1, hidden), (None, "embed"))
        self.sam_prompt_encoder = build_prompt_encoder(
            cfg.image_size, hidden, stride, rngs=rngs, dtype=dtype
        )
        decoder = cfg.get("mask_decoder", {})
        self.sam_mask_decoder = build_mask_decoder(
            hidden,
            mlp_dim=decoder.get("mlp_dim", 2048),
            iou_head_hidden_dim=decoder.get("iou_head_hidden_dim", 256),
            rngs=rngs,
            dynamic_multimask_via_stability=apply_postprocessing,
            dtype=dtype,
        )
        self.obj_ptr_proj = MLP(hidden, hidden, hidden, 3, rngs=rngs, dtype=dtype)

    def forward_image(self, images: jax.Array) -> dict[str, jax.Array]:
        """Normalised images [B, S, S, 3] -> ``vision_features``/``vision_pos_enc`` [B, g, g, 256]."""
        return self.image_encoder(images)

    def condition_on_memory(
        self,
        features: jax.Array,
        pos: jax.Array,
        memories: SelectedMemories,
        maskmem_pos_enc: jax.Array,
        dropout_rng: jax.Array | None = None,
    ) -> jax.Array:
        """Fuses the current frame with its memories (not an initial conditioning frame).

        As ``sam2_base._prepare_memory_conditioned_features``: spatial memories
        get ``maskmem_pos_enc + maskmem_tpos_enc[slot]``; each 256-d object
        pointer becomes 4 tokens of 64 with zero position
        (``add_tpos_enc_to_obj_ptrs`` is false in every official config).

        Args:
          features, pos: [B, g, g, 256] image features and their position encoding.
          memories: the slots from ``memory_bank.select_memories``.
          maskmem_pos_enc: [1, g, g, 64] memory position encoding.
          dropout_rng: training mode (the memory attention's dropout, as the
            official module in ``train()``); None: inference, no dropout.

        Returns:
          [B, g, g, 256] memory-conditioned features.
        """
        b, g, _, c = features.shape
        mem_dim = maskmem_pos_enc.shape[-1]
        tpos = self.maskmem_tpos_enc[...][memories.tpos_index, 0, 0]  # [S, D]
        memory_pos = maskmem_pos_enc.reshape(1, 1, g * g, mem_dim) + tpos[None, :, None, :]
        memory_pos = jnp.broadcast_to(memory_pos, memories.feats.shape)
        split = c // mem_dim
        ptr = memories.ptrs.reshape(b, -1, mem_dim)  # pointer-major, as the official permute
        ptr_valid = jnp.repeat(memories.ptr_valid, split, axis=1)
        out = self.memory_attention(
            features.reshape(b, g * g, c),
            pos.reshape(b, g * g, c),
            memories.feats,
            memory_pos,
            memories.valid,
            ptr,
            jnp.zeros_like(ptr),
            ptr_valid,
            deterministic=dropout_rng is None,
            rng=dropout_rng,
        )
        return out.reshape(b, g, g, c)

    def add_no_memory(self, features: jax.Array) -> jax.Array:
        """Initial conditioning frame: ``directly_add_no_mem_embed``."""
        return features + self.no_mem_embed[...][0]

    def encode_new_memory(
        self, features: jax.Array, high_res_masks: jax.Array, binarize: jax.Array
    ) -> dict[str, jax.Array]:
        """As ``sam2_base._encode_new_memory`` (no ``no_obj_embed_spatial`` in this release).

        Args:
          features: [B, g, g, 256] raw image features (no memory).
          high_res_masks: [B, 1, S, S] mask logits at the image size.
          binarize: [B] bool; clicked frames use ``mask > 0`` instead of sigmoid.

        Returns:
          ``vision_features`` [B, g, g, 64] and ``vision_pos_enc`` [B, g, g, 64].
        """
        soft = jax.nn.sigmoid(high_res_masks)
        hard = (high_res_masks > 0).astype(jnp.float32)
        mask = jnp.where(binarize[:, None, None, None], hard, soft)
        mask = mask * self.sigmoid_scale_for_mem_enc + self.sigmoid_bias_for_mem_enc
        return self.memory_encoder(features, jnp.moveaxis(mask, 1, -1), skip_mask_sigmoid=True)
