"""Batch-level mixing: proportions, each source batch used once in order, seeded, process-free."""

import grain
import numpy as np
import pytest

from data_pipelines.clip_sampling import SamplingSpec
from data_pipelines.mixing import BlockMixSelection, block_counts
from data_pipelines.pipeline import PipelineSpec, SourceSpec, mixed_batches
from data_pipelines.transforms import AugmentSpec
from etam_jax.errors import EtamError
from tests.data_pipelines.drawn_records import drawn_records


def test_block_counts():
    assert block_counts([0.9, 0.1], 1000).tolist() == [900, 100]
    assert block_counts([1, 1, 1], 100).tolist() == [34, 33, 33]
    with pytest.raises(EtamError, match="weights"):
        block_counts([0.0, 0.0], 10)


def test_selection_uses_every_source_batch_once_in_order():
    sel = BlockMixSelection([0.6, 0.3, 0.1], seed=5, block=50)
    picks = [sel[i] for i in range(2000)]
    for s in range(3):
        idx = [k for src, k in picks if src == s]
        assert idx == list(range(len(idx)))  # no source batch skipped or repeated
    kinds = np.array([src for src, _ in picks])
    np.testing.assert_allclose(np.bincount(kinds) / kinds.size, [0.6, 0.3, 0.1], atol=1e-9)
    assert [BlockMixSelection([0.6, 0.3, 0.1], 5, 50)[i] for i in range(2000)] == picks
    assert [BlockMixSelection([0.6, 0.3, 0.1], 6, 50)[i] for i in range(200)] != picks[:200]


def test_mixed_pipeline_proportions():
    """SA-V + 10% SA-1B through the real pipeline: batch kinds by shape, binomial tolerance."""
    spec = PipelineSpec(
        sources=(
            SourceSpec("sav", 0.9, 1, SamplingSpec(2, 1)),
            SourceSpec("sa1b", 0.1, 2, SamplingSpec(1, 2)),
        ),
        augment=AugmentSpec.resize_only(16),
        seed=3,
        mix_block=1000,
    )
    # x40: Grain's index_shuffle costs ~20 ms per index on a 3-element dataset, not on 120.
    ds = mixed_batches(
        [
            drawn_records(3, 2, 1, height=24, width=24) * 40,
            drawn_records(3, 1, 2, "sa1b", height=24, width=24) * 40,
        ],
        spec,
        grain.sharding.NoSharding(),
    )
    n = 300
    kinds = [ds[i]["frames"].shape[:2] for i in range(n)]
    assert set(kinds) == {(1, 2), (2, 1)}  # every batch whole from one source
    images = sum(k == (2, 1) for k in kinds)
    assert abs(images - 0.1 * n) < 3 * np.sqrt(n * 0.1 * 0.9), images
