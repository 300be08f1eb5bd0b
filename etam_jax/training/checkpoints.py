"""Training checkpoints: an Orbax ``CheckpointManager`` under ``workdir/checkpoints/``.

Each step directory holds three items (as MaxText's ``checkpointing.py``):

- ``state``: the :class:`~etam_jax.training.train_state.TrainState` leaves
  (``StandardSave``; ``graphdef`` and ``tx`` are static, not saved);
- ``data``: the Grain iterator state, one JSON per process
  (``grain.checkpoint.CheckpointSave``);
- ``meta``: JSON ``{"model", "config", "step", "format", "model_config"}``,
  read before any array so a workdir of another model fails fast;
  ``model_config`` (the run's ``cfg.model``) lets every ``--checkpoint``
  rebuild the architecture it trained (`convert.checkpoint_io.load_model`).

Restoring takes an abstract state whose leaves are ``ShapeDtypeStruct``s
carrying the *current* mesh's shardings, so a run saved on 8 devices resumes
on 4 (Orbax reshards on read). A latest checkpoint that does not restore
(truncated array file, garbage metadata) is moved aside to
``checkpoints/corrupt_<step>`` with a warning and the previous one is used.

Saves are asynchronous: ``save`` returns once the arrays are copied to host
memory (so the train step may donate the state right away); files are
written in the background. ``wait()`` before reading them, ``close()`` at exit.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Self, TypeVar

import grain
import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from etils import epath
from jax.experimental import multihost_utils

from etam_jax.convert.checkpoint_io import TRAIN_META, TRAIN_STATE, TRAIN_SUBDIR
from etam_jax.errors import EtamError

log = logging.getLogger(__name__)

FORMAT = "etam-train-v1"
# Read by every --checkpoint (convert.checkpoint_io) under the same names.
STATE, DATA, META, SUBDIR = TRAIN_STATE, "data", TRAIN_META, TRAIN_SUBDIR

State = TypeVar("State")


def default_config() -> ml_collections.ConfigDict:
    """The ``checkpoint`` section of a training config.

    Fields:
      every_steps: save when ``step % every_steps == 0`` (and on preemption).
      keep: how many of the latest checkpoints to keep.
      async_save: write files in a background thread.
      init_from: '' or the weights a fresh run starts from: any checkpoint
        `convert.checkpoint_io` reads (an official ``.pt`` file, an etam weights
        directory, another run's workdir or step folder); ignored on resume.
    """
    cfg = ml_collections.ConfigDict()
    cfg.every_steps = 1000
    cfg.keep = 3
    cfg.async_save = True
    cfg.init_from = ""
    return cfg


def _check_config(cfg: ml_collections.ConfigDict) -> None:
    for key in ("every_steps", "keep"):
        value = cfg[key]
        if not isinstance(value, int) or value < 1:
            raise EtamError(
                f"--config.checkpoint.{key} must be a positive integer, found {value!r}"
            )


def _all_processes(ok: bool) -> bool:
    """True when ``ok`` holds on every process (they must restore the same step)."""
    if jax.process_count() == 1:
        return ok
    return bool(np.all(multihost_utils.process_allgather(np.int32(ok))))


def _free_name(directory: epath.Path, name: str) -> epath.Path:
    """``directory/name``, or ``name.1``, ``name.2``, ... if taken."""
    path, n = directory / name, 0
    while path.exists():
        n += 1
        path = directory / f"{name}.{n}"
    return path


class Checkpointer:
    """Saves and restores a run's TrainState, data iterator state and metadata.

    Every method must be called on all processes (Orbax synchronises them).

    Args:
      workdir: the run directory; checkpoints go to ``workdir/checkpoints/``.
      cfg: the ``checkpoint`` ConfigDict (:func:`default_config`).
      model_name: the official model name; a checkpoint of another model in
        ``workdir`` is an error.
      config_name: the experiment config's name, recorded in ``meta``.
      model_config: the model ConfigDict of the run, recorded in ``meta``.
    """

    def __init__(
        self,
        workdir: str | os.PathLike,
        cfg: ml_collections.ConfigDict,
        model_name: str,
        config_name: str = "",
        model_config: ml_collections.ConfigDict | None = None,
    ):
        _check_config(cfg)
        path = epath.Path(workdir)
        # gs:// (any scheme) paths are absolute already; .absolute() would prefix the cwd.
        self.directory = (path if "://" in str(workdir) else path.absolute()) / SUBDIR
        self.model_name = model_name
        self.config_name = config_name
        self.model_config = model_config.to_dict() if model_config is not None else None
        self.every_steps = cfg.every_steps
        options = ocp.CheckpointManagerOptions(
            max_to_keep=cfg.keep,
            enable_async_checkpointing=cfg.async_save,
            create=True,
        )
        self._manager = ocp.CheckpointManager(self.directory, options=options)

    def save(self, step: int, state: Any, data_iterator: Any = None, force: bool = False) -> bool:
        """Saves ``state`` (and the iterator's position) at ``step``.

        Args:
          step: the state's step (``int(state.step)``).
          state: the TrainState (sharded ``jax.Array`` leaves).
          data_iterator: the Grain ``DatasetIterator`` feeding the run (each
            process saves its own), or None.
          force: save even when ``step`` is not a multiple of ``every_steps``
            (preemption, end of training).

        Returns:
          Whether a save was started (False off-interval, or when ``step`` is
          already saved, e.g. a preemption right after a periodic save).
        """
        step = int(step)
        # Our own interval test: Orbax's default policy also saves the first step seen.
        if (not force and step % self.every_steps) or step in self._manager.all_steps():
            return False
        items = {
            STATE: ocp.args.StandardSave(state),
            META: ocp.args.JsonSave(self._meta(step)),
        }
        if data_iterator is not None:
            items[DATA] = grain.checkpoint.CheckpointSave(data_iterator)
        return self._manager.save(step, args=ocp.args.Composite(**items), force=True)

    def wait(self) -> None:
        """Blocks until the pending asynchronous save is on disk."""
        self._manager.wait_until_finished()

    def latest_step(self) -> int | None:
        """The newest saved step, or None in a fresh workdir."""
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        """The saved steps, oldest first."""
        return sorted(self._manager.all_steps())

    def restore(
        self, abstract_state: State, data_iterator: Any = None, step: int | None = None
    ) -> State | None:
        """The saved state laid out like ``abstract_state``; None in a fresh workdir.

        Args:
          abstract_state: a TrainState whose leaves are ``jax.ShapeDtypeStruct``s
            with the target ``sharding`` (any mesh, not necessarily the saved one).
          data_iterator: the run's Grain iterator; its state is set to the
            saved position in place. None: the data state is not restored.
          step: a specific step (no fallback); default the latest that restores.

        Raises:
          EtamError: the checkpoints belong to another model; ``step`` is not
            saved or does not restore; no checkpoint restores.
        """
        self.wait()
        steps = self.all_steps()[::-1]
        if step is not None and step not in steps:
            raise EtamError(
                f"{self.directory}: no checkpoint at step {step}; saved steps: {steps[::-1]}"
            )
        candidates = steps if step is None else [step]
        errors, failed = [], []
        for s in candidates:
            state, error = self._try_restore(s, abstract_state, data_iterator)
            if not error:
                self._quarantine(failed)
                return state
            errors.append(f"step {s}: {error}")
            failed.append(s)
            log.warning("%s: checkpoint at step %d does not restore (%s)", self.directory, s, error)
        if not errors:
            return None  # a fresh workdir
        raise EtamError(
            f"{self.directory}: no checkpoint could be restored (tried steps {candidates}); "
            + "; ".join(errors)
        )

    def _try_restore(
        self, step: int, abstract_state: State, data_iterator: Any
    ) -> tuple[State | None, str]:
        """(state, "") or (None, why); a step counts only if it restores on every process."""
        try:
            state, error = self._restore_step(step, abstract_state, data_iterator), ""
        except EtamError:
            raise
        except Exception as e:  # noqa: BLE001 -- Orbax/tensorstore/json raise many kinds on bad files
            state, error = None, f"{type(e).__name__}: {e}"
        if not _all_processes(not error):
            return None, error or "failed on another process"
        return state, ""

    def close(self) -> None:
        """Waits for the pending save and releases the manager's threads."""
        self._manager.wait_until_finished()
        self._manager.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _meta(self, step: int) -> dict:
        return {
            "model": self.model_name,
            "config": self.config_name,
            "step": step,
            "format": FORMAT,
            "model_config": self.model_config,
        }

    def _check_meta(self, step: int) -> None:
        """Reads the step's ``meta`` item; another model's checkpoint is an EtamError."""
        meta = self._manager.restore(
            step, args=ocp.args.Composite(**{META: ocp.args.JsonRestore()})
        )[META]
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise ValueError(f"meta is not an etam training checkpoint record: {meta!r}")
        if meta["model"] != self.model_name:
            raise EtamError(
                f"{self.directory}: holds checkpoints of model {meta['model']!r} "
                f"(step {step}), but this run trains {self.model_name!r}; "
                "use another workdir or the matching model"
            )

    def _restore_step(self, step: int, abstract_state: State, data_iterator: Any) -> State:
        self._check_meta(step)
        items = {STATE: ocp.args.StandardRestore(abstract_state)}
        if data_iterator is not None:
            items[DATA] = grain.checkpoint.CheckpointRestore(data_iterator)
        restored = self._manager.restore(step, args=ocp.args.Composite(**items))
        return restored[STATE]

    def _quarantine(self, steps: list[int]) -> None:
        """Moves checkpoints that did not restore (all newer than the restored
        one) aside: their step numbers would block the next saves."""
        if not steps:
            return
        if jax.process_index() == 0:
            for s in steps:
                target = _free_name(self.directory, f"corrupt_{s}")
                log.warning(
                    "%s: moving checkpoint step %d that did not restore to %s",
                    self.directory,
                    s,
                    target,
                )
                (self.directory / str(s)).rename(target)
        if jax.process_count() > 1:
            multihost_utils.sync_global_devices("etam_checkpoint_quarantine")
        self._manager.reload()
