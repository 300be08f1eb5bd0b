"""SAM 2's training code (sdist ``sam2==1.1.0``) for the training parity tests.

scripts/setup.sh installs the sdist's ``sam2`` and ``training`` packages as
``sam2_training_ref.sam2`` / ``sam2_training_ref.training``
(scripts/install_sam2_training_ref.py), so they never clash with
efficient-track-anything's ``sam2``. This module loads SAM 2.1's training yaml
and builds its loss and optimizer from it, exactly as ``training/trainer.py``
does (``instantiate(loss)``, ``construct_optimizer(model, optim.optimizer,
optim.options, optim.param_group_modifiers)``).
"""

from __future__ import annotations

import types
from pathlib import Path

import torch
from flax import nnx
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from etam_jax.convert.naming import iter_leaves

try:
    import sam2_training_ref
    from sam2_training_ref.sam2.modeling.backbones.hieradet import Hiera
    from sam2_training_ref.training import loss_fns, optimizer
    from sam2_training_ref.training.utils.train_utils import register_omegaconf_resolvers
except ImportError as err:  # pragma: no cover - setup.sh installs it
    raise ImportError(
        f"SAM 2's training reference is not installed ({err}); run scripts/setup.sh "
        "(it runs scripts/install_sam2_training_ref.py)"
    ) from err

TRAINING_YAML = (
    Path(sam2_training_ref.__file__).parent
    / "sam2/configs/sam2.1_training/sam2.1_hiera_b+_MOSE_finetune.yaml"
)
CORE_LOSS_KEY = "core_loss"  # training/trainer.py: the loss the trainer back-propagates


def training_config() -> DictConfig:
    """SAM 2.1's MOSE fine-tuning yaml, with the trainer's resolvers (``divide``...)."""
    if not OmegaConf.has_resolver("divide"):
        register_omegaconf_resolvers()
    return OmegaConf.load(TRAINING_YAML)


def reference_loss() -> loss_fns.MultiStepMultiMasksAndIous:
    """``trainer.loss.all`` of the yaml: the loss SAM 2.1 trains with."""
    return instantiate(training_config().trainer.loss.all)


def add_vit_layer_ids_(trunk: torch.nn.Module) -> None:
    """Gives an EfficientTAM ``ViT`` trunk the ``get_num_layers``/``get_layer_id``
    that ``layer_decay_param_modifier`` calls and only SAM 2's Hiera defines. They
    are Hiera's own methods (the BEiT rule on full parameter names: ``pos_embed``,
    ``patch_embed`` 0, ``blocks.i`` i + 1, anything else ``len(blocks) + 1``),
    bound to the ViT, which has ``blocks`` too."""
    trunk.get_num_layers = types.MethodType(Hiera.get_num_layers, trunk)
    trunk.get_layer_id = types.MethodType(Hiera.get_layer_id, trunk)


def reference_optimizer(model: torch.nn.Module, optim: DictConfig) -> optimizer.Optimizer:
    """``construct_optimizer`` as ``Trainer._construct_optimizers`` calls it."""
    return optimizer.construct_optimizer(
        model, optim.optimizer, optim.options, optim.param_group_modifiers
    )


def lr_and_wd_per_parameter(
    model: torch.nn.Module, optim: optimizer.Optimizer, where: float, step: int
) -> dict[str, tuple[float, float]]:
    """Each parameter's (lr, weight_decay) after ``step_schedulers(where, step)``,
    the values the ``step``-th ``optimizer.step()`` uses (``Trainer.train_epoch``)."""
    optim.step_schedulers(where, step)
    group_of = {}
    for group in optim.optimizer.param_groups:
        for p in group["params"]:
            group_of[id(p)] = (float(group["lr"]), float(group["weight_decay"]))
    return {name: group_of[id(p)] for name, p in model.named_parameters()}


def build_sam2_train(official: torch.nn.Module, model_cfg: DictConfig, **flags) -> torch.nn.Module:
    """SAM 2.1's ``SAM2Train`` around EfficientTAM's image encoder, memory attention
    and memory encoder (the modules of ``official``, an EfficientTAM ``SAM2Base``),
    with every other flag from EfficientTAM's yaml (``model_cfg``, the ``model``
    node) and the training flags ``flags``; the heads and embeddings SAM2Base builds
    itself get ``official``'s weights (loaded strictly), in training mode."""
    from sam2_training_ref.training.model.sam2 import SAM2Train

    skip = {"_target_", "image_encoder", "memory_attention", "memory_encoder"}
    skip |= {"compile_image_encoder"}
    yaml_flags = {k: v for k, v in OmegaConf.to_container(model_cfg).items() if k not in skip}
    # SAM 2.1's SAM2Base reads the hidden width from ``neck.d_model``; EfficientTAM's
    # ViTDetNeck takes d_model but does not keep it.
    official.image_encoder.neck.d_model = model_cfg.image_encoder.neck.d_model
    model = SAM2Train(
        official.image_encoder,
        official.memory_attention,
        official.memory_encoder,
        **yaml_flags,
        **flags,
    )
    model.load_state_dict(official.state_dict(), strict=True)
    return model.train()


def flat_state(state) -> dict:
    """An nnx.State as {dotted name: value}."""
    return {".".join(map(str, p)): v.get_value() for p, v in nnx.to_flat_state(state)}


def torch_names(ours) -> dict[str, tuple[str, tuple[int, ...] | None]]:
    """Our dotted parameter name -> (torch name, axes ours -> torch)."""
    nodes = dict(nnx.iter_graph(ours))
    out = {}
    for leaf in iter_leaves(ours):
        if isinstance(leaf.variable, nnx.Param):
            path = next(p for p, n in nodes.items() if n is leaf.variable)
            out[".".join(map(str, path))] = (leaf.torch_key, leaf.to_torch_axes)
    return out
