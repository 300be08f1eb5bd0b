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
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

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
