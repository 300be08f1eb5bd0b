"""The smallest training run that exercises everything: for tests and CI-sized sweeps.

efficienttam_ti's parameter names at 64 px with a 2-block trunk and one
memory-attention layer, 2-frame clips of one object, batch 1 per process,
SA-V-style clips only. Needs ``--config.data.sources.sav.path``.
"""

from __future__ import annotations

import ml_collections

from experiments.configs import data_defaults
from experiments.configs.base import get_base

SIZE = 64


def get_config(arg: str | None = None):
    del arg
    cfg = get_base("efficienttam_ti", "sav")
    cfg.name = "tiny"
    cfg.model.image_size = SIZE
    cfg.model.image_encoder.trunk.depth = 2
    cfg.model.image_encoder.trunk.window_block_indexes = (0,)
    cfg.model.memory_attention.num_layers = 1
    cfg.prompts.num_correction_pt_per_frame = 1
    cfg.remat = False
    cfg.data.workers = 0
    cfg.data.mix_block = 4
    cfg.data.augment.resolution = SIZE
    cfg.data.sources = ml_collections.ConfigDict(
        {"sav": data_defaults.source(weight=1.0, batch_size=1, num_frames=2, max_objects=1)}
    )
    o = cfg.optimizer
    o.lr, o.encoder_lr, o.schedule, o.warmup_steps = 1e-3, 1e-3, "cosine", 2
    cfg.train.total_steps = 8
    cfg.train.log_every = 1
    cfg.checkpoint.every_steps = 3
    cfg.checkpoint.async_save = False
    cfg.eval.every_steps = 0
    return cfg
