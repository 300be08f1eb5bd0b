"""Preemption: notice a SIGTERM, let the loop force-save and exit cleanly.

The train loop asks ``handler.should_stop(step)`` every step; when it says
yes, every process force-saves a checkpoint at that step and returns.

- One process: a Python SIGTERM handler sets ``requested``.
- Several processes with JAX's preemption service (on by default after
  ``jax.distributed.initialize``, as on Cloud TPU): the coordination service
  owns SIGTERM and agrees on a step at which all processes stop
  (``multihost_utils.reached_preemption_sync_point``, as Orbax's
  ``CheckpointManager.reached_preemption``); no Python handler is installed,
  since it would replace the service's.
- Several processes without it: the Python handler, and ``should_stop``
  ORs the flag over processes (one tiny all-gather per call), so all stop
  at the same step.

No global state: the handler object holds the flag and the previous
handlers, which ``uninstall`` puts back.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Sequence
from types import FrameType
from typing import Any, Self

import jax
import numpy as np
from jax.experimental import multihost_utils

log = logging.getLogger(__name__)


def _uses_sync_point() -> bool:
    return jax.process_count() > 1 and bool(jax.config.jax_enable_preemption_service)


class PreemptionHandler:
    """Records a termination signal instead of dying on it.

    Use as a context manager around the train loop (installs on enter,
    restores the previous handlers on exit). Signals can only be installed
    from the main thread.

    Args:
      signals: the signals meaning "save and stop" (default SIGTERM, what
        schedulers and Cloud TPU maintenance send).
    """

    def __init__(self, signals: Sequence[int] = (signal.SIGTERM,)):
        self.signals = tuple(signals)
        self.requested = False
        self._previous: dict[int, Any] = {}

    def install(self) -> Self:
        """Starts catching the signals (no-op when the JAX preemption service is in charge)."""
        if self._previous or _uses_sync_point():
            return self
        for sig in self.signals:
            self._previous[sig] = signal.signal(sig, self._on_signal)
        return self

    def uninstall(self) -> None:
        """Puts back the handlers that were installed before :meth:`install`."""
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous = {}

    def should_stop(self, step: int) -> bool:
        """Whether the loop must save at ``step`` and exit; the same on all processes.

        Call it at every step on every process (the sync point protocol needs it).
        """
        if jax.process_count() == 1:
            return self.requested
        if _uses_sync_point():
            return bool(multihost_utils.reached_preemption_sync_point(int(step)))
        flags = multihost_utils.process_allgather(np.int32(self.requested))
        return bool(np.any(flags))

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        del frame
        log.warning("received %s: will save a checkpoint and stop", signal.Signals(signum).name)
        self.requested = True

    def __enter__(self) -> Self:
        return self.install()

    def __exit__(self, *exc) -> None:
        self.uninstall()
