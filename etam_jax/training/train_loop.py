"""The training loop behind ``etam train``: data -> sharded steps -> logs, checkpoints, validation.

One `Trainer` per run. On start it restores the latest checkpoint of
``workdir`` (state and every process's data-iterator position) or initialises
the model sharded on the mesh (optionally from an official ``.pt``), compiles
one step per batch shape up front (image batches and clip batches), then
loops: next host batch -> global array -> step. Every ``log_every`` steps a
row goes to ``metrics.jsonl``/TensorBoard and the progress bar (loss, step
time, examples/s, MFU); checkpoints every ``checkpoint.every_steps``
(asynchronous) and on SIGTERM; validation J&F on a DAVIS-layout folder every
``eval.every_steps``. Non-finite steps are skipped by the step itself; after
``train.max_bad_steps`` in a row the loop saves the last good state and stops.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

import jax
import ml_collections
import numpy as np
from flax import nnx
from jax.experimental import multihost_utils
from tqdm import tqdm

from data_pipelines.global_batch import to_global_batch
from data_pipelines.pipeline import sources_from_config, spec_from_config, training_batches
from etam_jax.errors import EtamError
from etam_jax.models.build import build_model
from etam_jax.training import flops, mesh_presets, sharding
from etam_jax.training.checkpoints import Checkpointer
from etam_jax.training.init_from import init_params_from
from etam_jax.training.metrics_writer import MetricsWriter
from etam_jax.training.preemption import PreemptionHandler
from etam_jax.training.train_step import abstract_batch, compile_step, make_train_step, plan_state

log = logging.getLogger(__name__)


def make_run_mesh(cfg: ml_collections.ConfigDict) -> jax.sharding.Mesh:
    """``cfg.mesh.shape`` when set (non-zero), else the named ``cfg.mesh.preset``."""
    shape = tuple(cfg.mesh.shape)
    if not any(shape):
        shape = mesh_presets.mesh_shape(cfg.mesh.preset, jax.device_count())
    return sharding.make_mesh(shape)


def batch_shapes(
    cfg: ml_collections.ConfigDict, mesh: jax.sharding.Mesh | None = None
) -> dict[tuple[int, int], dict]:
    """Global batch shapes per (frames, objects) signature, one per data source.

    With ``mesh``, checks that every global batch splits over its batch axes.
    """
    size = cfg.data.augment.resolution
    if size != cfg.model.image_size:
        raise EtamError(
            f"config data.augment.resolution ({size}) must equal model.image_size "
            f"({cfg.model.image_size})"
        )
    shapes = {}
    for name, s in cfg.data.sources.items():
        b, t, o = s.batch_size * jax.process_count(), s.num_frames, s.max_objects
        ways = 1 if mesh is None else mesh.shape["data"] * mesh.shape["fsdp"]
        if b % ways:
            raise EtamError(
                f"global batch {b} ({name}: data.sources.{name}.batch_size={s.batch_size} x "
                f"{jax.process_count()} processes) does not split over the mesh's data x fsdp = "
                f"{ways} devices; change the batch size or --config.mesh.preset/shape"
            )
        shapes[(t, o)] = {
            "frames": ((b, t, size, size, 3), np.uint8),
            "masks": ((b, t, o, size, size), np.bool_),
            "obj_valid": ((b, o), np.bool_),
            "frame_valid": ((b, t), np.bool_),
        }
    return shapes


def local_value(x: jax.Array) -> np.ndarray:
    """A replicated array's value from this process's copy (works across hosts,
    where ``jax.device_get`` refuses arrays that are not fully addressable)."""
    return np.asarray(x.addressable_data(0))


def _signature(local: Mapping[str, np.ndarray]) -> tuple[int, int]:
    return local["frame_valid"].shape[1], local["obj_valid"].shape[1]


class Trainer:
    """A training run in ``workdir`` with config ``cfg`` (see `experiments/configs/base.py`)."""

    def __init__(self, cfg: ml_collections.ConfigDict, workdir: str):
        self.cfg, self.workdir = cfg, workdir
        self.mesh = make_run_mesh(cfg)
        self.model_name = cfg.model.name
        self.build_fn = lambda: build_model(cfg.model, rngs=nnx.Rngs(cfg.seed))
        self.writer = MetricsWriter(workdir)
        self.ckpt = Checkpointer(
            workdir, cfg.checkpoint, self.model_name, cfg.get("name", ""), cfg.model
        )
        self.data = iter(
            training_batches(sources_from_config(cfg.data), spec_from_config(cfg.data))
        )
        self.state = self._restore_or_init()
        self.steps, self.step_flops = self._compile()
        self.evaluator = None

    def _restore_or_init(self):
        init, abstract, shardings = plan_state(self.build_fn, self.cfg, self.mesh)
        state = self.ckpt.restore(abstract, self.data)
        if state is not None:
            log.info(
                "resumed from %s at step %d", self.ckpt.directory, int(local_value(state.step))
            )
            return state
        with jax.set_mesh(self.mesh):
            state = jax.jit(init, out_shardings=shardings)()
        if self.cfg.checkpoint.init_from:
            params = init_params_from(
                self.cfg.checkpoint.init_from, self.model_name, state.graphdef, abstract.params
            )
            state = state.replace(params=params)
        return state

    def _compile(self):
        step_fn = make_train_step(self.cfg)
        abstract = jax.tree.map(
            lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), self.state
        )
        shardings = jax.tree.map(lambda x: x.sharding, self.state)
        compiled, costs = {}, {}
        for sig, shapes in batch_shapes(self.cfg, self.mesh).items():
            start = time.perf_counter()
            compiled[sig] = compile_step(
                step_fn, shardings, abstract, abstract_batch(shapes, self.mesh), self.mesh
            )
            costs[sig] = flops.step_flops(compiled[sig])
            log.info(
                "compiled the step for %s frames x %s objects in %.1f s",
                *sig,
                time.perf_counter() - start,
            )
        return compiled, costs

    def run(self) -> dict:
        """Trains to ``train.total_steps`` (or until preempted); returns the last metrics row."""
        cfg = self.cfg
        step = int(local_value(self.state.step))
        self.writer.truncate_after(step)
        if cfg.eval.data and cfg.eval.get("at_start", False) and step == 0:
            self._validate(step)
        bar = tqdm(
            total=cfg.train.total_steps,
            initial=step,
            desc="etam train",
            unit="step",
            disable=jax.process_index() != 0,
        )
        window = _Window()
        last: dict = {}
        with PreemptionHandler() as preemption:
            while step < cfg.train.total_steps:
                step, metrics = self._one_step(window)
                bar.update(1)
                if step % cfg.train.log_every == 0 or step == cfg.train.total_steps:
                    last = self._log(step, metrics, window, bar)
                self._guard_nan(step)
                self.ckpt.save(step, self.state, self.data)
                if preemption.should_stop(step):
                    self.ckpt.save(step, self.state, self.data, force=True)
                    log.warning("preempted: saved step %d, stopping", step)
                    break
                if cfg.eval.data and cfg.eval.every_steps and step % cfg.eval.every_steps == 0:
                    last.update(self._validate(step))
        bar.close()
        if step >= cfg.train.total_steps and cfg.eval.data and step % max(cfg.eval.every_steps, 1):
            last.update(self._validate(step))
        self.ckpt.save(step, self.state, self.data, force=True)
        self.ckpt.close()
        self.writer.close()
        return last

    def _one_step(self, window: _Window):
        local = next(self.data)
        sig = _signature(local)
        if sig not in self.steps:
            raise EtamError(f"a batch of {sig[0]} frames x {sig[1]} objects has no compiled step")
        batch = to_global_batch(local, self.mesh)
        start = time.perf_counter()
        self.state, metrics = self.steps[sig](self.state, batch, self.state.step_key())
        step = int(local_value(self.state.step))  # waits for the step: the step time is real
        window.add(time.perf_counter() - start, batch["frames"].shape[0], self.step_flops[sig])
        return step, metrics

    def _log(self, step, metrics, window, bar) -> dict:
        row = {k: float(local_value(v)) for k, v in metrics.items()}
        row.update(window.summary(self.mesh.devices.flat, self.cfg.model.dtype))
        row["skipped_steps"] = int(local_value(self.state.skipped_steps))
        self.writer.write(step, row)
        bar.set_postfix(
            loss=f"{row['loss']:.3f}",
            step_s=f"{row['step_time_s']:.2f}",
            ex_s=f"{row['examples_per_s']:.1f}",
            mfu="n/a" if row.get("mfu") is None else f"{100 * row['mfu']:.1f}%",
        )
        window.reset()
        return row

    def _guard_nan(self, step: int) -> None:
        bad = int(local_value(self.state.bad_steps))
        if bad >= self.cfg.train.max_bad_steps:
            self.ckpt.save(step, self.state, self.data, force=True)  # skipped steps kept the params
            self.ckpt.close()
            raise EtamError(
                f"{bad} non-finite steps in a row (loss or gradients NaN/inf) at step {step}; "
                f"saved the last good parameters in {self.ckpt.directory} and stopped"
            )

    def _validate(self, step: int) -> dict:
        """Validation J&F of the current parameters on ``cfg.eval.data`` (process 0 runs it)."""
        from etam_jax.evaluation.vos_eval import VOSEvaluator  # pylint: disable=import-outside-toplevel

        params = self.state.params
        if jax.process_count() > 1:
            params = multihost_utils.process_allgather(params, tiled=True)
        if jax.process_index() != 0:
            return {}
        model = nnx.merge(self.state.graphdef, jax.device_get(params))
        if self.evaluator is None:
            self.evaluator = VOSEvaluator(model)
        else:
            self.evaluator.update(model)
        summary = self.evaluator(
            self.cfg.eval.data, progress=False, max_videos=self.cfg.eval.max_videos or None
        )
        row = {"val_J&F": summary["J&F"], "val_J": summary["J"], "val_F": summary["F"]}
        self.writer.write(step, row)
        self.writer.images(
            step, "val_predictions", self.evaluator.sample_overlays(self.cfg.eval.data)
        )
        log.info("step %d: validation J&F %.4f", step, summary["J&F"])
        return row


class _Window:
    """Step times, examples and FLOPs since the last log row."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.seconds, self.examples, self.flops, self.steps = 0.0, 0, 0.0, 0

    def add(self, seconds: float, examples: int, step_flops: float | None) -> None:
        self.seconds += seconds
        self.examples += examples
        self.flops += step_flops or 0.0
        self.steps += 1

    def summary(self, devices, dtype: str) -> dict:
        seconds = max(self.seconds, 1e-9)
        per_step = seconds / max(self.steps, 1)
        return {
            "step_time_s": per_step,
            "examples_per_s": self.examples / seconds,
            "mfu": flops.mfu(self.flops / max(self.steps, 1), per_step, list(devices), dtype),
        }
