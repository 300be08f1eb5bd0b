"""A small EfficientTAM trained on generated data on a 2-core CPU in minutes.

SA-V-style clips interleaved with SA-1B-style images (``etam data synth``),
validation J&F on held-out generated DAVIS-layout videos before and after
training. ``scripts/demo.sh`` runs it::

    etam data synth --out DATA --kinds sa1b,sav --seed 0 --count 48 --object-scale 1.6
    etam data synth --out VAL --kinds davis --seed 1 --count 3 --object-scale 1.6
    etam train --config experiments/configs/demo.py --workdir RUN \
        --config.data.sources.sav.path=DATA/sav --config.data.sources.sa1b.path=DATA/sa1b \
        --config.eval.data=VAL/davis

The model is efficienttam_ti's architecture at 64 px with a 4-block trunk and
a 2-layer memory attention (same parameter names; a smaller instance).
"""

from __future__ import annotations

from experiments.configs import data_defaults
from experiments.configs.base import get_base

SIZE = 64


def get_config(arg: str | None = None):
    del arg
    cfg = get_base("efficienttam_ti", "sav")
    cfg.name = "demo"
    cfg.model.image_size = SIZE
    cfg.model.image_encoder.trunk.depth = 4
    cfg.model.image_encoder.trunk.window_block_indexes = (0, 2)
    cfg.model.memory_attention.num_layers = 2
    # One initial conditioning frame, corrected with one click: 3 of each clip's 4
    # frames are tracked from memory, what the validation (first-frame masks) scores.
    p = cfg.prompts
    p.num_init_cond_frames, p.rand_init_cond_frames = 1, False
    p.num_frames_to_correct, p.rand_frames_to_correct = 1, False
    p.num_correction_pt_per_frame = 1
    cfg.remat = False
    cfg.data.workers = 0
    cfg.data.read_buffer = 4
    cfg.data.mix_block = 8
    cfg.data.augment.resolution = SIZE
    # Half the steps are SA-1B-style image batches (4 images x 4 objects, ~0.25 s on
    # 2 cores): from scratch, segmenting the prompted object is what takes longest
    # to learn, and image steps teach it at a third of a clip step's cost.
    cfg.data.sources.sav = data_defaults.source(weight=0.5, batch_size=2, num_frames=4, max_objects=2)
    cfg.data.sources.sa1b = data_defaults.source(weight=0.5, batch_size=4, num_frames=1, max_objects=4)
    o = cfg.optimizer
    # 1e-3 and above collapse to "no object anywhere" on these small batches; 4e-4 learns.
    o.lr, o.encoder_lr, o.schedule = 4e-4, 4e-4, "cosine"
    o.warmup_steps, o.total_steps, o.layer_decay, o.clip_norm = 20, 700, 1.0, 1.0
    cfg.train.total_steps = o.total_steps
    cfg.train.log_every = 25
    cfg.checkpoint.every_steps = 250
    cfg.checkpoint.keep = 2
    cfg.eval.every_steps = 350
    cfg.eval.at_start = True
    return cfg
