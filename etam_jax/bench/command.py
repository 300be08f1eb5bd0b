"""`etam bench track|data|train|memory-attention`: each benchmark lives in its own module with ``main(argv)``."""

from __future__ import annotations

import importlib

from etam_jax.errors import EtamError

BENCHMARKS = {
    "track": "etam_jax.bench.track",
    "data": "data_pipelines.bench",
    "train": "etam_jax.bench.train",
    "memory-attention": "etam_jax.bench.memory_attention",
}


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in BENCHMARKS:
        raise EtamError(f"usage: etam bench {{{'|'.join(BENCHMARKS)}}} [args]; got {argv[:1]}")
    return int(importlib.import_module(BENCHMARKS[argv[0]]).main(argv[1:]) or 0)
