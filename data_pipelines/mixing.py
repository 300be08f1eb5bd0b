"""Batch-level mixing of sources: which source every batch comes from.

SAM 2 (``training/dataset/sam2_datasets.py``, ``MixedDataLoader``) draws the
source of each batch by weight from one generator seeded identically on every
rank, so every rank trains the same kind of batch at the same step. Here the
choice is a pure function of ``(seed, batch index)``, so Grain can read any
batch by index (random access, resumable, the same with any worker count):
batches are cut into blocks of ``block`` batches; each block holds every
source in proportion to its weight (largest-remainder rounding) in an order
drawn from ``(seed, block number)``. Proportions are then exact over every
block and deterministic; the choice does not depend on the JAX process.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import grain
import numpy as np

from etam_jax.errors import EtamError


def block_counts(weights: Sequence[float], block: int) -> np.ndarray:
    """Batches of each source in a block of ``block`` (largest remainder), int64 ``[n]``."""
    w = np.asarray(weights, np.float64)
    if w.ndim != 1 or w.size == 0 or (w < 0).any() or w.sum() <= 0:
        raise EtamError(
            f"data mixing weights must be >= 0 with a positive sum; got {list(weights)}"
        )
    exact = w / w.sum() * block
    counts = np.floor(exact).astype(np.int64)
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[: block - counts.sum()]] += 1
    return counts


class BlockMixSelection(grain.transforms.DatasetSelectionMap):
    """Global batch index -> (source, batch index within that source).

    Args:
        weights: one weight per source (need not sum to 1).
        seed: the mixing seed (the same on every process).
        block: batches per block; proportions are exact per block.
    """

    def __init__(self, weights: Sequence[float], seed: int, block: int = 1000):
        self.counts = block_counts(weights, block)
        self.seed = int(seed)
        self.block = int(block)
        self.base = np.repeat(np.arange(len(self.counts)), self.counts)

    def __len__(self) -> int:
        return sys.maxsize

    def block_order(self, b: int) -> np.ndarray:
        """Source of each batch in block ``b``: int64 ``[block]``."""
        return np.random.default_rng([self.seed, b]).permutation(self.base)

    def __getitem__(self, index: int) -> tuple[int, int]:
        b, pos = divmod(int(index), self.block)
        order = self.block_order(b)
        source = int(order[pos])
        return source, b * int(self.counts[source]) + int((order[:pos] == source).sum())

    def __repr__(self) -> str:
        return f"BlockMixSelection(counts={self.counts.tolist()}, seed={self.seed})"


def mix_batches(
    batches: Sequence[grain.MapDataset], weights: Sequence[float], seed: int, block: int = 1000
) -> grain.MapDataset:
    """Mixes per-source batch datasets (infinite) into one, by weight.

    Args:
        batches: one infinite MapDataset of batches per source.
        weights: mixing weight per source.
        seed: mixing seed, equal on every JAX process.
        block: see `BlockMixSelection`.

    Returns:
        an infinite MapDataset of whole batches, each from one source.
    """
    if len(batches) != len(weights):
        raise EtamError(f"{len(batches)} sources but {len(weights)} mixing weights")
    if len(batches) == 1:
        return batches[0]
    return grain.MapDataset.select_from_datasets(batches, BlockMixSelection(weights, seed, block))
