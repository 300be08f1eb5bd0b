"""Data pipeline defaults: SAM 2's video-stage recipe (SA-V + 10% SA-1B).

``get_config()`` returns the ``data`` section a training config embeds
(``cfg.data = data_defaults.get_config()``); `data_pipelines.pipeline.spec_from_config`
turns it into a `PipelineSpec`. Batch sizes are per JAX process.
"""

from __future__ import annotations

import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    """The ``data`` ConfigDict; ``arg`` is unused (kept for ``get_config(arg)`` uniformity)."""
    del arg
    cfg = ml_collections.ConfigDict()
    cfg.seed = 0
    cfg.workers = 8  # decoding processes per host
    cfg.worker_buffer = 1  # batches ready per worker
    cfg.read_threads = 1
    cfg.read_buffer = 2  # batches read ahead per process
    cfg.max_skipped_fraction = 0.01
    cfg.skip_check_after = 200
    cfg.mix_block = 1000
    cfg.pack_masks = True  # masks travel as bits; unpacked on the device (global_batch)
    cfg.sources = ml_collections.ConfigDict()
    # Keyed by name: give the pipeline {"sav": records, "sa1b": records}.
    cfg.sources.sav = source(weight=0.9, batch_size=1, num_frames=8, max_objects=3)
    cfg.sources.sa1b = source(weight=0.1, batch_size=1, num_frames=1, max_objects=64)
    # Data the config generates when no path is given (etam_jax/training/generated_data.py):
    # {folder: {kinds, seed, count, object_scale[, motion]}}; empty: every path must be given.
    cfg.generated = ml_collections.ConfigDict()
    cfg.augment = ml_collections.ConfigDict(
        dict(
            resolution=1024,
            hflip_prob=0.5,
            degrees=25.0,
            shear=20.0,
            affine_tries=1,
            fill=(123, 116, 103),
            clip_jitter=(0.1, 0.03, 0.03),
            grayscale_prob=0.05,
            frame_jitter=(0.1, 0.05, 0.05),
        )
    )
    return cfg


def source(
    weight: float,
    batch_size: int,
    num_frames: int,
    max_objects: int,
    path: str = "",
    reverse_time_prob: float = 0.0,
) -> ml_collections.ConfigDict:
    """One source entry: mixing weight, per-process batch size, clip shape, data path."""
    return ml_collections.ConfigDict(
        dict(
            path=path,
            weight=weight,
            batch_size=batch_size,
            num_frames=num_frames,
            max_objects=max_objects,
            reverse_time_prob=reverse_time_prob,
        )
    )
