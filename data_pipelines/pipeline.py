"""The training input pipeline: one Grain MapDataset per source, mixed by batch.

Per source (STYLE.md section 5)::

    records[shard_index::shard_count]          # this JAX process's shard
      .seed(s).shuffle().repeat()              # reshuffled every epoch
      .random_map(ExampleMaker)                # sample, decode, augment, pad
      .batch(batch_size, drop_remainder=True)  # whole batches of one shape

then `mixing.mix_batches` (which source each batch comes from: the same on
every process), ``to_iter_dataset`` (bounded read buffer), ``mp_prefetch``
(decoding in worker processes) and `skip_limit.SkipLimitIterDataset`. All
randomness comes from Grain's per-element rngs, so the iterator state
(``get_state``/``set_state``, or ``grain.checkpoint.CheckpointSave`` in an
Orbax ``Composite``) replays the stream exactly, in a fresh process too.

Use::

    spec = spec_from_config(cfg.data)                  # experiments/configs/data_defaults.py
    it = iter(training_batches(sources_from_config(cfg.data), spec))
    batch = to_global_batch(next(it), mesh)            # data_pipelines.global_batch
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import grain
import numpy as np

from data_pipelines.clip_sampling import SamplingSpec
from data_pipelines.examples import ExampleMaker
from data_pipelines.mixing import mix_batches
from data_pipelines.skip_limit import SkipLimitIterDataset
from data_pipelines.transforms import AugmentSpec
from etam_jax.errors import EtamError


@dataclasses.dataclass(frozen=True)
class SourceSpec:
    """One data source's share and example shape.

    Attributes:
        name: e.g. ``"sav"``, ``"sa1b"`` (for messages).
        weight: mixing weight (fraction of batches).
        batch_size: examples per batch on this JAX process.
        sampling: frames and objects per example.
    """

    name: str
    weight: float
    batch_size: int
    sampling: SamplingSpec


@dataclasses.dataclass(frozen=True)
class PipelineSpec:
    """Everything the pipeline needs besides the data sources.

    Attributes:
        sources: one `SourceSpec` per data source, in the order the sources are given.
        augment: augmentation settings (shared by all sources).
        seed: pipeline seed; equal on every JAX process.
        workers: decoding worker processes (0: decode in this process).
        worker_buffer: batches each worker may hold ready.
        read_threads: threads per process reading batches.
        read_buffer: batches each process may read ahead.
        max_skipped_fraction: stop past this fraction of bad examples.
        skip_check_after: examples drawn before the fraction is judged.
        mix_block: batches per mixing block (`mixing.BlockMixSelection`).
        pack_masks: batches carry ``masks_packed`` (bits) instead of ``masks``;
            `global_batch.to_global_batch` unpacks on the device.
    """

    sources: tuple[SourceSpec, ...]
    augment: AugmentSpec = dataclasses.field(default_factory=AugmentSpec)
    seed: int = 0
    workers: int = 0
    worker_buffer: int = 1
    read_threads: int = 1
    read_buffer: int = 2
    max_skipped_fraction: float = 0.01
    skip_check_after: int = 200
    mix_block: int = 1000
    pack_masks: bool = False


def source_seed(seed: int, source: int, shard_index: int) -> int:
    """Seed of one source on one shard: shards must not share augmentation draws."""
    return int(np.random.SeedSequence([seed, source, shard_index]).generate_state(1)[0])


def source_batches(
    records: Sequence[Any],
    spec: SourceSpec,
    augment: AugmentSpec,
    seed: int,
    shard: grain.sharding.ShardOptions,
    pack_masks: bool = False,
) -> grain.MapDataset:
    """Infinite MapDataset of this shard's batches of one source.

    Args:
        records: random-access records of the whole source (``len``, ``[i]``).
        spec: the source's batch size and sampling.
        augment: augmentation settings.
        seed: the source's seed (`source_seed`).
        shard: which slice of the records this process reads.
        pack_masks: ship masks bit-packed (`examples.ExampleMaker`).

    Returns:
        MapDataset of example dicts batched to ``[batch_size, ...]``.
    """
    shard_records = grain.MapDataset.source(records)[shard.shard_index :: shard.shard_count]
    if len(shard_records) == 0:
        raise EtamError(
            f"data source {spec.name!r} has no records for process "
            f"{shard.shard_index} of {shard.shard_count} ({len(records)} records)"
        )
    ds = shard_records.seed(seed).shuffle().repeat()
    ds = ds.random_map(ExampleMaker(shard_records, spec.sampling, augment, pack_masks=pack_masks))
    return ds.batch(spec.batch_size, drop_remainder=True)


Sources = Sequence[Sequence[Any]] | Mapping[str, Sequence[Any]]


def records_per_spec(sources: Sources, spec: PipelineSpec) -> list[Sequence[Any]]:
    """The record source of each ``spec.sources`` entry: by name (mapping) or by position."""
    names = [s.name for s in spec.sources]
    if isinstance(sources, Mapping):
        missing = [n for n in names if n not in sources]
        if missing:
            raise EtamError(f"no data source for {missing}; given {sorted(sources)}")
        return [sources[n] for n in names]
    if len(sources) != len(names):
        raise EtamError(f"{len(sources)} data sources given for {len(names)} source specs {names}")
    return list(sources)


def mixed_batches(
    sources: Sources, spec: PipelineSpec, shard: grain.sharding.ShardOptions | None = None
) -> grain.MapDataset:
    """All sources' batches mixed by weight: an infinite, random-access MapDataset.

    Args:
        sources: random-access record sources, by source name or in ``spec.sources`` order.
        spec: pipeline settings.
        shard: this process's shard; default `grain.sharding.ShardByJaxProcess`.
    """
    shard = shard or grain.sharding.ShardByJaxProcess()
    batches = [
        source_batches(
            records,
            s,
            spec.augment,
            source_seed(spec.seed, i, shard.shard_index),
            shard,
            spec.pack_masks,
        )
        for i, (records, s) in enumerate(zip(records_per_spec(sources, spec), spec.sources))
    ]
    return mix_batches(batches, [s.weight for s in spec.sources], spec.seed, spec.mix_block)


def _worker_init(worker_index: int, worker_count: int) -> None:
    """One OpenCV thread per worker: the workers are the parallelism."""
    del worker_index, worker_count
    import cv2  # pylint: disable=import-outside-toplevel

    cv2.setNumThreads(1)


def prefetch(ds: grain.MapDataset, spec: PipelineSpec) -> grain.IterDataset:
    """``to_iter_dataset`` with a bounded read buffer, then ``mp_prefetch`` if ``spec.workers``."""
    it = ds.to_iter_dataset(
        grain.ReadOptions(num_threads=spec.read_threads, prefetch_buffer_size=spec.read_buffer)
    )
    if spec.workers > 0:
        it = it.mp_prefetch(
            grain.MultiprocessingOptions(
                num_workers=spec.workers, per_worker_buffer_size=spec.worker_buffer
            ),
            worker_init_fn=_worker_init,
        )
    return it


def training_batches(
    sources: Sources, spec: PipelineSpec, shard: grain.sharding.ShardOptions | None = None
) -> grain.IterDataset:
    """The trainer's input: ``iter()`` it for a checkpointable iterator of batches.

    Each batch is a dict: ``frames`` uint8 ``[B, T, S, S, 3]``, ``masks`` bool
    ``[B, T, O, S, S]``, ``obj_valid`` bool ``[B, O]``, ``frame_valid`` bool
    ``[B, T]``, ``object_ids`` int32 ``[B, O]``, ``frame_indices`` int32 ``[B, T]``
    (see `examples.MODEL_KEYS` for what a train step takes).
    """
    it = prefetch(mixed_batches(sources, spec, shard), spec)
    return SkipLimitIterDataset(it, spec.max_skipped_fraction, spec.skip_check_after)


def sources_from_config(cfg: Any) -> dict[str, Any]:
    """Opens ``cfg.sources.<name>.path`` of every source (raw or prepared, `sources.open_source`)."""
    from data_pipelines.sources import open_source  # pylint: disable=import-outside-toplevel

    missing = [name for name, s in cfg.sources.items() if not s.path]
    if missing:
        raise EtamError(
            f"no path for data source(s) {missing}: set "
            + ", ".join(f"--config.data.sources.{n}.path=DIR" for n in missing)
        )
    return {name: open_source(s.path) for name, s in cfg.sources.items()}


def spec_from_config(cfg: Any) -> PipelineSpec:
    """`PipelineSpec` from the ``data`` ConfigDict of `experiments/configs/data_defaults.py`."""
    a = cfg.augment
    augment = AugmentSpec(
        resolution=a.resolution,
        hflip_prob=a.hflip_prob,
        degrees=a.degrees,
        shear=a.shear,
        affine_tries=a.affine_tries,
        fill=tuple(a.fill),
        clip_jitter=tuple(a.clip_jitter),
        grayscale_prob=a.grayscale_prob,
        frame_jitter=tuple(a.frame_jitter),
    )
    # ConfigDict iterates its keys sorted: sources are matched by name, not order.
    sources = tuple(
        SourceSpec(
            name=name,
            weight=s.weight,
            batch_size=s.batch_size,
            sampling=SamplingSpec(s.num_frames, s.max_objects, s.reverse_time_prob),
        )
        for name, s in cfg.sources.items()
    )
    return PipelineSpec(
        sources=sources,
        augment=augment,
        seed=cfg.seed,
        workers=cfg.workers,
        worker_buffer=cfg.worker_buffer,
        read_threads=cfg.read_threads,
        read_buffer=cfg.read_buffer,
        max_skipped_fraction=cfg.max_skipped_fraction,
        skip_check_after=cfg.skip_check_after,
        mix_block=cfg.mix_block,
        pack_masks=cfg.pack_masks,
    )
