"""The shared training config: every section ``etam train`` reads, with SAM 2.1 defaults.

Experiment files (``paper.py:stage=sav,model=s``, ``demo.py``, ...) call
``get_base(model, stage)`` and change what differs. Any field can be overridden
on the command line: ``--config.optimizer.lr=1e-4``,
``--config.model.memory_attention.pool_window=2``.
"""

from __future__ import annotations

import ml_collections

from etam_jax.models.configs import get_model_config
from etam_jax.training import losses, prompt_simulation
from etam_jax.training.optimizer import get_optimizer_config
from experiments.configs import data_defaults


def get_base(model: str, stage: str) -> ml_collections.ConfigDict:
    """Training config for an official model name and a paper stage (``sa1b`` or ``sav``)."""
    cfg = ml_collections.ConfigDict()
    cfg.name = f"{stage}_{model}"
    cfg.seed = 0
    # The model config itself (etam_jax.models.configs): every field overridable,
    # e.g. model.memory_attention.pool_window / pool_correction for the pooling sweep.
    cfg.model = get_model_config(model)
    cfg.prompts = prompt_simulation.default_config()
    cfg.loss = losses.default_config()
    cfg.optimizer = get_optimizer_config(stage)
    cfg.data = data_defaults.get_config()
    if stage == "sa1b":  # images only
        cfg.data.sources = ml_collections.ConfigDict(
            {"sa1b": data_defaults.source(weight=1.0, batch_size=4, num_frames=1, max_objects=64)}
        )
    cfg.remat = True  # recompute each frame's activations in the backward pass
    cfg.mesh = ml_collections.ConfigDict(
        dict(preset="auto", shape=(0, 0, 0))  # shape (data, fsdp, tensor) wins when non-zero
    )
    cfg.train = ml_collections.ConfigDict(
        dict(
            # The paper's stage lengths; the lr schedule follows (optimizer.total_steps 0).
            total_steps={"sa1b": 90_000, "sav": 300_000}[stage],
            log_every=50,
            max_bad_steps=10,  # NaN guard: stop after this many non-finite steps in a row
        )
    )
    cfg.checkpoint = ml_collections.ConfigDict(
        # init_from: weights to start from (stage 2: the stage-1 workdir, or a .pt)
        dict(every_steps=2000, keep=3, async_save=True, init_from="")
    )
    cfg.eval = ml_collections.ConfigDict(
        # DAVIS-layout folder; 0 = all videos; at_start: also score the initial weights
        dict(data="", every_steps=10_000, max_videos=0, at_start=False)
    )
    return cfg
