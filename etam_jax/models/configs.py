"""Model shapes keyed by the official EfficientTAM config names.

``get_model_config(name)`` returns an ``ml_collections.ConfigDict`` whose
fields follow the official yaml (``shared/reference/official_configs``).
The official ``_1``/``_2`` variants are points in the memory-pooling space:
``memory_attention.pool_window`` (1 = no pooling, else the side of the
square window; must divide the feature grid) and
``memory_attention.pool_correction`` (``none`` | ``eq5`` | ``eq6``).
"""

from __future__ import annotations

import ml_collections

from etam_jax.errors import EtamError

POOL_CORRECTIONS = ("none", "eq5", "eq6")

_TRUNKS = {"ti": dict(embed_dim=192, num_heads=3), "s": dict(embed_dim=384, num_heads=6)}

# official name -> (trunk, image size, pool window, pool correction)
MODEL_NAMES: dict[str, tuple[str, int, int, str]] = {
    "efficienttam_ti": ("ti", 1024, 1, "none"),
    "efficienttam_s": ("s", 1024, 1, "none"),
    "efficienttam_ti_512x512": ("ti", 512, 1, "none"),
    "efficienttam_s_512x512": ("s", 512, 1, "none"),
    "efficienttam_ti_1": ("ti", 1024, 2, "eq5"),
    "efficienttam_s_1": ("s", 1024, 2, "eq5"),
    "efficienttam_ti_2": ("ti", 1024, 2, "eq6"),
    "efficienttam_s_2": ("s", 1024, 2, "eq6"),
}


def _trunk(size: str) -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(
        dict(
            patch_size=16,
            depth=12,
            mlp_ratio=4.0,
            window_size=14,
            window_block_indexes=(0, 1, 3, 4, 6, 7, 9, 10),
            pretrain_img_size=224,
            **_TRUNKS[size],
        )
    )


def get_model_config(name: str, image_size: int | None = None) -> ml_collections.ConfigDict:
    """The config of an official model, optionally at another image size.

    Args:
      name: one of ``MODEL_NAMES``.
      image_size: override of the input resolution (a multiple of 16); the
        RoPE feature grid follows it (image_size / 16).
    """
    if name not in MODEL_NAMES:
        raise EtamError(f"unknown model {name!r}; known models: {', '.join(MODEL_NAMES)}")
    trunk, size, window, correction = MODEL_NAMES[name]
    size = image_size or size
    if size % 16:
        raise EtamError(f"image_size {size} is not a multiple of 16 (model {name})")
    return ml_collections.ConfigDict(
        dict(
            name=name,
            image_size=size,
            image_encoder=dict(trunk=_trunk(trunk), d_model=256),
            memory_attention=dict(
                d_model=256,
                num_layers=4,
                num_heads=1,
                dim_feedforward=2048,
                dropout=0.1,
                kv_in_dim=64,
                rope_theta=10000.0,
                pool_window=window,
                pool_correction=correction,
            ),
            memory_encoder=dict(out_dim=64, fuser_layers=2, fuser_kernel=7),
            # Fixed in the official code (sam2_base._build_sam_heads); smaller for small demos.
            mask_decoder=dict(mlp_dim=2048, iou_head_hidden_dim=256),
            num_maskmem=7,
            max_obj_ptrs_in_encoder=16,
            sigmoid_scale_for_mem_enc=20.0,
            sigmoid_bias_for_mem_enc=-10.0,
            dtype="float32",
        )
    )


def check_widths(cfg: ml_collections.ConfigDict) -> None:
    """The hidden width is shared: the neck's ``image_encoder.d_model`` is the memory
    attention's ``d_model`` (official ``hidden_dim``), and object pointers are split
    into ``d_model / memory_encoder.out_dim`` memory tokens."""
    hidden, neck, mem = (
        cfg.memory_attention.d_model,
        cfg.image_encoder.d_model,
        cfg.memory_encoder.out_dim,
    )
    if hidden != neck:
        raise EtamError(
            f"model.memory_attention.d_model ({hidden}) must equal model.image_encoder.d_model ({neck})"
        )
    if hidden % mem:
        raise EtamError(
            f"model.memory_attention.d_model ({hidden}) must be a multiple of "
            f"model.memory_encoder.out_dim ({mem})"
        )


def backbone_stride(cfg: ml_collections.ConfigDict) -> int:
    """Pixels per feature-grid cell: the trunk's patch size (official ``backbone_stride``, 16).

    The prompt encoder's grid, the memory encoder's mask downsampling and
    ``mask_downsample`` follow it. The official code fixes parts of those paths to
    16 (``mask_downsample`` is a 4 x 4 conv), so only stride-16 models load into it
    unchanged; other strides are for small experiments (the demo).
    """
    stride = cfg.image_encoder.trunk.patch_size
    if stride < 4 or stride & (stride - 1):
        raise EtamError(
            f"model.image_encoder.trunk.patch_size {stride} must be a power of 2 >= 4 "
            "(the mask decoder upsamples the feature grid 4x)"
        )
    if cfg.image_size % stride:
        raise EtamError(
            f"model.image_size {cfg.image_size} is not a multiple of "
            f"model.image_encoder.trunk.patch_size {stride}"
        )
    return stride


def feature_grid(cfg: ml_collections.ConfigDict) -> int:
    """Side of the feature grid (64 at 1024 with the official stride 16)."""
    return cfg.image_size // backbone_stride(cfg)
