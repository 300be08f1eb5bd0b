"""`RssSampler` sees a transient allocation that is gone before the block ends."""

import time

import numpy as np

from etam_jax.bench.rss import RssSampler, rss_mb


def test_sampler_catches_transient_peak():
    before = rss_mb()
    with RssSampler(interval_s=0.001) as sampler:
        block = np.ones(300 * 2**20 // 8)  # 300 MiB, touched
        time.sleep(0.05)
        del block
        time.sleep(0.05)
    assert rss_mb() < before + 100  # given back (large numpy buffers are mmapped)
    assert sampler.peak_mb > before + 250


def test_sampler_without_allocation_stays_near_current():
    with RssSampler() as sampler:
        time.sleep(0.02)
    assert abs(sampler.peak_mb - rss_mb()) < 50
