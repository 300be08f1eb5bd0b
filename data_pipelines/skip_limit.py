"""Counting skipped (bad) examples in the main process and stopping past a limit.

Workers replace a bad record and record it in the example (``num_skipped``,
``skipped_files``, see `examples`); this last pipeline stage, after
``mp_prefetch``, removes those fields from the batch, logs the files, keeps
the totals (part of the iterator state, so a resumed run keeps counting) and
raises `EtamError` once the skipped fraction passes the limit.
"""

from __future__ import annotations

import logging
from typing import Any

import grain
import numpy as np

from etam_jax.errors import EtamError

log = logging.getLogger(__name__)
SKIP_KEYS = ("num_skipped", "skipped_files")


class SkipLimitIterDataset(grain.IterDataset):
    """Strips the skip fields from batches and enforces the skipped-fraction limit.

    Args:
        parent: batches carrying ``num_skipped`` int ``[B]`` and ``skipped_files`` ``[B]``.
        max_fraction: stop when skipped / (skipped + delivered) exceeds this.
        min_seen: do not judge the fraction before this many examples were drawn.
    """

    def __init__(self, parent: grain.IterDataset, max_fraction: float = 0.01, min_seen: int = 200):
        super().__init__(parent)
        self.max_fraction = float(max_fraction)
        self.min_seen = int(min_seen)

    def __iter__(self) -> SkipLimitIterator:
        return SkipLimitIterator(self._parent.__iter__(), self.max_fraction, self.min_seen)

    def __str__(self) -> str:
        return f"SkipLimitIterDataset(max_fraction={self.max_fraction})"


class SkipLimitIterator(grain.DatasetIterator):
    """Iterator of `SkipLimitIterDataset`; ``skipped`` and ``delivered`` are the totals."""

    def __init__(self, parent: grain.DatasetIterator, max_fraction: float, min_seen: int):
        super().__init__(parent)
        self.max_fraction = max_fraction
        self.min_seen = min_seen
        self.skipped = 0
        self.delivered = 0

    def __next__(self) -> dict[str, Any]:
        batch = dict(next(self._parent))
        counts = np.asarray(batch.pop("num_skipped"))
        files = np.asarray(batch.pop("skipped_files")).reshape(-1)
        self.delivered += counts.size
        self.skipped += int(counts.sum())
        for name in files[counts.reshape(-1) > 0]:
            log.warning("skipped bad example(s): %s", name.decode(errors="replace"))
        self._check(files)
        return batch

    def _check(self, files: np.ndarray) -> None:
        seen = self.skipped + self.delivered
        if seen >= self.min_seen and self.skipped > self.max_fraction * seen:
            recent = [f.decode(errors="replace") for f in files if f]
            raise EtamError(
                f"skipped {self.skipped} of {seen} examples ({self.skipped / seen:.1%}), more than "
                f"the limit data.max_skipped_fraction={self.max_fraction}; recent bad files: "
                f"{recent[:5] or 'see the warnings above'}"
            )

    def get_state(self) -> dict[str, Any]:
        return {
            "parent": self._parent.get_state(),
            "skipped": self.skipped,
            "delivered": self.delivered,
        }

    def set_state(self, state: dict[str, Any]) -> None:
        self._parent.set_state(state["parent"])
        self.skipped = int(state["skipped"])
        self.delivered = int(state["delivered"])

    def __str__(self) -> str:
        return f"SkipLimitIterator(skipped={self.skipped}, delivered={self.delivered})"
