"""Where a run's numbers go: ``metrics.jsonl``, TensorBoard and the progress bar.

Only process 0 writes (every process computes the same replicated metrics).
``metrics.jsonl`` holds one JSON object per logged step (at least ``step``,
``loss``, ``lr``, ``examples_per_s``; validation rows add ``val_J&F``); it is
appended to, so a resumed run continues the same file.
"""

from __future__ import annotations

import json
import math
import pathlib
from collections.abc import Mapping

import jax
import numpy as np


def _plain(value):
    """JSON-friendly scalar (NaN/inf become null, as JSON has neither)."""
    if value is None:
        return None
    value = float(np.asarray(value))
    return value if math.isfinite(value) else None


class MetricsWriter:
    """Appends metrics to ``workdir/metrics.jsonl`` and TensorBoard ``workdir/tb``.

    Args:
      workdir: the run directory.
      enabled: write at all (default: only on process 0).
    """

    def __init__(self, workdir: str | pathlib.Path, enabled: bool | None = None):
        self.enabled = jax.process_index() == 0 if enabled is None else enabled
        self.path = pathlib.Path(workdir) / "metrics.jsonl"
        self._tb = None
        if self.enabled:
            from tensorboardX import SummaryWriter  # pylint: disable=import-outside-toplevel

            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._tb = SummaryWriter(str(pathlib.Path(workdir) / "tb"))

    def write(self, step: int, metrics: Mapping[str, float]) -> None:
        """One row: ``{"step": step, **metrics}`` to the JSONL file and TensorBoard scalars."""
        if not self.enabled:
            return
        row = {"step": int(step), **{k: _plain(v) for k, v in metrics.items()}}
        with self.path.open("a") as f:
            f.write(json.dumps(row) + "\n")
        for key, value in row.items():
            if key != "step" and value is not None:
                self._tb.add_scalar(key.replace("&", "and"), value, int(step))
        self._tb.flush()

    def truncate_after(self, step: int) -> None:
        """Drops rows logged after ``step``: a resumed run replays those steps."""
        if not self.enabled or not self.path.exists():
            return
        rows = self.path.read_text().splitlines()
        kept = [r for r in rows if r.strip() and json.loads(r)["step"] <= step]
        if len(kept) != len(rows):
            self.path.write_text("".join(r + "\n" for r in kept))

    def images(self, step: int, tag: str, images: list[np.ndarray]) -> None:
        """uint8 ``[H, W, 3]`` images (e.g. prediction overlays) to TensorBoard."""
        if not self.enabled or not images:
            return
        for i, image in enumerate(images):
            self._tb.add_image(f"{tag}/{i}", image, int(step), dataformats="HWC")
        self._tb.flush()

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()


def read_metrics(workdir: str | pathlib.Path) -> list[dict]:
    """The rows of ``workdir/metrics.jsonl`` (empty if absent)."""
    path = pathlib.Path(workdir) / "metrics.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
