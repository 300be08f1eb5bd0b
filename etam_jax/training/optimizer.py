"""The optax optimizer of the SAM 2 / EfficientTAM recipe.

AdamW with a peak learning rate for the image encoder and another for the
rest, layer-wise lr decay over the ViT trunk (the trunk's ``pos_embed`` not
decayed), no weight decay on biases and LayerNorms, global-norm gradient
clipping, and warm-up + cosine or reciprocal-sqrt schedules. Groups come from
parameter paths, as big_vision's regex ``lr_mults``/``wd_mults`` and SAM 2's
``training/optimizer.py`` (``layer_decay_param_modifier``) do, and become one
``optax.multi_transform``.

The defaults are SAM 2.1's training yaml (``sam2.1_hiera_b+_MOSE_finetune.yaml``,
``trainer.optim``) and match its ``construct_optimizer`` per parameter and step
(tests/training/test_optimizer_official.py). Its layer decay reads layer ids from
the trunk's ``get_layer_id``, which only Hiera has; for the ViT trunk we use the
same (BEiT) rule: pos/patch embedding 0, ``blocks.i`` i + 1, anything else depth + 1.
"""

from __future__ import annotations

import fnmatch
import re

import jax
import jax.numpy as jnp
import ml_collections
import optax

from etam_jax.errors import EtamError

# Paths (dotted, as ``image_encoder.trunk.blocks.3.attn.qkv.kernel``) that get
# no weight decay. SAM 2.1's yaml: ``param_names: ['*bias*']`` and
# ``module_cls_names: ['torch.nn.LayerNorm']`` (our nnx.LayerNorm's ``scale``).
NO_WEIGHT_DECAY = (r"bias", r"(^|\.)scale$")

# Decayed even where NO_WEIGHT_DECAY matches: SAM 2's ``LayerNorm2d`` is its own
# nn.Module, not a torch.nn.LayerNorm, so the yaml's class filter misses its weight
# (ours is an nnx.LayerNorm like any other, so it is found by path).
LAYER_NORM_2D_SCALES = (
    r"^image_encoder\.neck\.convs\.\d+\.norm_\d+\.scale$",
    r"^memory_encoder\.mask_downsampler\.encoder\.\d+\.scale$",
    r"^memory_encoder\.fuser\.layers\.\d+\.norm\.scale$",
    r"^sam_prompt_encoder\.mask_downscaling\.\d+\.scale$",
    r"^sam_mask_decoder\.output_upscaling\.\d+\.scale$",
)

# A deliberate alternative (set ``no_weight_decay`` to it and ``weight_decay_kept``
# to ()): no decay on biases, every norm scale, ConvNeXt layer scales (``gamma``),
# position embeddings / encodings and learned tokens (``nnx.Embed`` tables,
# ``no_mem_embed``, ``no_obj_ptr``), as big_vision / timm-style recipes do.
NO_WEIGHT_DECAY_EXTENDED = (
    r"\.bias$|^bias$",
    r"(^|\.)scale$",
    r"(^|\.)gamma$",
    r"(^|\.)(pos_embed|maskmem_tpos_enc|no_mem_pos_enc)$",
    r"\.embedding$",
    r"^(no_mem_embed|no_obj_ptr)$",
)


def _base_config() -> ml_collections.ConfigDict:
    return ml_collections.ConfigDict(
        {
            "lr": 3e-4,  # peak lr of everything but the image encoder
            "encoder_lr": 6e-5,  # peak lr of ``encoder_prefix`` params
            "weight_decay": 0.1,
            "b1": 0.9,
            "b2": 0.999,
            "eps": 1e-8,  # torch AdamW's default
            "layer_decay": 0.9,
            "clip_norm": 0.1,  # global norm; 0 disables
            "schedule": "cosine",  # cosine | rsqrt | constant
            "warmup_steps": 15_000,
            "total_steps": 0,  # 0: the run's ``train.total_steps`` (`for_run`)
            "cosine_end_factor": 0.1,  # SAM 2: cosine to lr / 10
            "rsqrt_timescale": 10_000,
            "cooldown_steps": 0,  # rsqrt only: linear to 0 over the last steps
            "encoder_prefix": "image_encoder",
            "trunk_prefix": "image_encoder.trunk",
            "no_weight_decay": NO_WEIGHT_DECAY,
            "weight_decay_kept": LAYER_NORM_2D_SCALES,
            # (fnmatch pattern, lr scale) for trunk params, first match wins,
            # in place of the layer decay: SAM 2.1's ``overrides``.
            "layer_decay_overrides": (("*pos_embed*", 1.0),),
        }
    )


def _sa1b_overrides() -> dict:
    # Paper, SA-1B stage (90k steps: the config's train.total_steps): AdamW
    # lr 4e-4, wd 0.1, reciprocal-sqrt, layer decay 0.8. The warm-up length is SAM 2's (1k), not stated there.
    return {
        "lr": 4e-4,
        "encoder_lr": 4e-4,
        "layer_decay": 0.8,
        "schedule": "rsqrt",
        "warmup_steps": 1_000,
    }


def _sav_overrides() -> dict:
    # Paper, video stage (SA-V + 10% SA-1B; 300k steps): lr 6e-5 image
    # encoder / 3e-4 rest, cosine with 15k warm-up; SAM 2: layer decay 0.9.
    return {}


PRESETS = {"sa1b": _sa1b_overrides, "sav": _sav_overrides}


def get_optimizer_config(preset: str = "sav") -> ml_collections.ConfigDict:
    """The optimizer config of a named training stage (``sa1b`` or ``sav``)."""
    if preset not in PRESETS:
        raise EtamError(f"unknown optimizer preset {preset!r}; known: {', '.join(PRESETS)}")
    cfg = _base_config()
    cfg.update(PRESETS[preset]())
    return cfg


def for_run(cfg: ml_collections.ConfigDict, train_steps: int) -> ml_collections.ConfigDict:
    """The optimizer config of a run of ``train_steps`` steps: a copy whose
    ``total_steps`` is ``train_steps`` unless set (non-zero) in ``cfg``."""
    cfg = ml_collections.ConfigDict(cfg.to_dict())
    if not int(cfg.total_steps):
        cfg.total_steps = int(train_steps)
    return cfg


def make_schedule(cfg: ml_collections.ConfigDict, peak: float) -> optax.Schedule:
    """The lr schedule peaking at ``peak``: linear warm-up from 0, then
    ``cosine`` to ``peak * cosine_end_factor`` at ``total_steps``, or
    ``rsqrt`` (big_vision's: ``peak / sqrt((step - warmup + timescale) /
    timescale)``, optionally cooled down linearly to 0), or ``constant``."""
    warmup = int(cfg.warmup_steps)
    if int(cfg.total_steps) <= 0 and (cfg.schedule == "cosine" or int(cfg.cooldown_steps)):
        raise EtamError(
            f"optimizer.total_steps is {cfg.total_steps}: the {cfg.schedule} schedule needs the "
            "run's length (set train.total_steps, or optimizer.total_steps to override it)"
        )
    if cfg.schedule == "cosine" and warmup >= int(cfg.total_steps):
        raise EtamError(
            f"optimizer.warmup_steps ({warmup}) must be below the cosine schedule's length "
            f"({cfg.total_steps}: optimizer.total_steps, or train.total_steps when that is 0)"
        )
    if cfg.schedule == "cosine":
        return optax.warmup_cosine_decay_schedule(
            0.0,
            peak,
            warmup,
            int(cfg.total_steps),
            end_value=peak * cfg.cosine_end_factor,
        )
    if cfg.schedule == "constant":
        return optax.join_schedules(
            [optax.linear_schedule(0.0, peak, warmup), optax.constant_schedule(peak)],
            [warmup],
        )
    if cfg.schedule != "rsqrt":
        raise EtamError(
            f"optimizer.schedule: expected cosine, rsqrt or constant, found {cfg.schedule!r}"
        )
    timescale, total, cooldown = (
        float(cfg.rsqrt_timescale),
        int(cfg.total_steps),
        int(cfg.cooldown_steps),
    )

    def schedule(step):
        step = jnp.asarray(step, jnp.float32)
        lr = peak * jax.lax.rsqrt(jnp.maximum(step - warmup + timescale, timescale) / timescale)
        lr = lr * jnp.minimum(1.0, step / warmup) if warmup else lr
        return lr * jnp.clip((total - step) / cooldown, 0.0, 1.0) if cooldown else lr

    return schedule


def path_name(path: tuple) -> str:
    """A pytree key path as a dotted parameter name (``blocks.3.attn.qkv.kernel``)."""
    parts = []
    for key in path:
        if isinstance(key, jax.tree_util.DictKey):
            parts.append(str(key.key))
        elif isinstance(key, jax.tree_util.SequenceKey):
            parts.append(str(key.idx))
        elif isinstance(key, jax.tree_util.GetAttrKey) and key.name != "value":
            parts.append(key.name)
    return ".".join(parts)


def trunk_layer_id(name: str, trunk_prefix: str, depth: int) -> int:
    """As SAM 2's ``get_layer_id``: pos/patch embeddings 0, block ``i`` i + 1,
    anything else in the trunk ``depth + 1``."""
    rel = name[len(trunk_prefix) + 1 :]
    if rel.startswith(("pos_embed", "patch_embed")):
        return 0
    match = re.match(r"blocks\.(\d+)\.", rel)
    return int(match.group(1)) + 1 if match else depth + 1


def _trunk_depth(names: list[str], trunk_prefix: str) -> int:
    pattern = re.compile(re.escape(trunk_prefix) + r"\.blocks\.(\d+)\.")
    ids = [int(m.group(1)) for m in map(pattern.match, names) if m]
    return max(ids) + 1 if ids else 0


def _decayed(name: str, cfg: ml_collections.ConfigDict) -> bool:
    if any(re.search(p, name) for p in cfg.weight_decay_kept):
        return True
    return not any(re.search(p, name) for p in cfg.no_weight_decay)


def _layer_decay_override(name: str, cfg: ml_collections.ConfigDict) -> int | None:
    """Index of the first ``layer_decay_overrides`` pattern matching ``name``
    (``fnmatchcase``, as ``layer_decay_param_modifier``), or None."""
    for index, (pattern, _) in enumerate(cfg.layer_decay_overrides):
        if fnmatch.fnmatchcase(name, pattern):
            return index
    return None


def param_label(name: str, cfg: ml_collections.ConfigDict, depth: int) -> str:
    """``{group}/{wd|no_wd}``; groups ``rest``, ``encoder``, ``trunk_{layer id}``,
    ``trunk_override_{k}`` (trunk params matching ``layer_decay_overrides[k]``)."""
    decay = "wd" if _decayed(name, cfg) else "no_wd"
    if name.startswith(cfg.trunk_prefix + "."):
        override = _layer_decay_override(name, cfg)
        layer = f"override_{override}" if override is not None else None
        group = f"trunk_{layer or trunk_layer_id(name, cfg.trunk_prefix, depth)}"
    elif name.startswith(cfg.encoder_prefix + "."):
        group = "encoder"
    else:
        group = "rest"
    return f"{group}/{decay}"


def param_labels(params, cfg: ml_collections.ConfigDict):
    """A tree like ``params`` holding each parameter's label (see ``param_label``)."""
    flat = jax.tree_util.tree_flatten_with_path(params)[0]
    depth = _trunk_depth([path_name(p) for p, _ in flat], cfg.trunk_prefix)
    return jax.tree_util.tree_map_with_path(
        lambda p, _: param_label(path_name(p), cfg, depth), params
    )


def label_lr_and_wd(label: str, cfg: ml_collections.ConfigDict, depth: int) -> tuple[float, float]:
    """(peak lr, weight decay) of a label. As ``layer_decay_param_modifier``
    (``num_layers = depth + 1``): layer id ``k`` gets ``decay ** (depth + 1 - k)``;
    an override's group its own scale instead."""
    group, decay = label.split("/")
    wd = cfg.weight_decay if decay == "wd" else 0.0
    if group == "rest":
        return cfg.lr, wd
    if group == "encoder":
        return cfg.encoder_lr, wd
    if group.startswith("trunk_override_"):
        _, scale = cfg.layer_decay_overrides[int(group.removeprefix("trunk_override_"))]
        return cfg.encoder_lr * scale, wd
    layer_id = int(group.removeprefix("trunk_"))
    return cfg.encoder_lr * cfg.layer_decay ** (depth + 1 - layer_id), wd


def make_optimizer(cfg: ml_collections.ConfigDict, params) -> optax.GradientTransformation:
    """Clip by global norm, then per-label AdamW (see module docstring).

    Args:
      cfg: ``get_optimizer_config(...)``.
      params: the parameter tree (``nnx.State`` or a dict; arrays or
        ``ShapeDtypeStruct``s) the optimizer will update.
    """
    labels = param_labels(params, cfg)
    names = [path_name(p) for p, _ in jax.tree_util.tree_flatten_with_path(params)[0]]
    depth = _trunk_depth(names, cfg.trunk_prefix)
    transforms = {}
    for label in sorted(set(jax.tree.leaves(labels))):
        peak, wd = label_lr_and_wd(label, cfg, depth)
        transforms[label] = optax.adamw(
            make_schedule(cfg, peak), cfg.b1, cfg.b2, cfg.eps, weight_decay=wd
        )
    return optax.chain(gradient_clip(cfg), optax.multi_transform(transforms, labels))


def gradient_clip(cfg: ml_collections.ConfigDict) -> optax.GradientTransformation:
    """Clipping to global L2 norm ``clip_norm`` (SAM 2's ``GradientClipper``,
    ``norm_type: 2``, up to torch's +1e-6 on the norm); identity when 0."""
    return optax.clip_by_global_norm(cfg.clip_norm) if cfg.clip_norm else optax.identity()
