"""``etam bench data``: pipeline throughput and memory against the raw decode ceiling.

For each worker count, two runs over the same records, same Grain plumbing:

- ``decode``: sample the clip and decode its frames and masks (`decode_record`),
  nothing else: the ceiling.
- ``full``: the training pipeline (sample, decode, augment, pad, batch).

Reported per run: examples/s (wall), examples per CPU-second of the main and
worker processes (the per-core figure; robust on a shared machine), peak RSS
of all processes and of the largest worker. ``full_vs_decode`` is the ratio of
examples per CPU-second (target >= 0.7). Records come from ``--data DIR``
(any source `sources.open_source` reads; the first ``--records`` are held in
memory, as prepared ArrayRecord reads cost little) or, by default, synthetic
scenes (`synthetic_scene.Scene`) in memory.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from data_pipelines.clip_sampling import SamplingSpec, sample_clip
from data_pipelines.records import Record, decode_record, encode_jpeg, encode_rle, make_record
from data_pipelines.transforms import AugmentSpec
from etam_jax.errors import EtamError

TARGET = 0.7
MIN_SOURCE_LEN = 512


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="etam bench data", description=__doc__.split("\n")[0])
    p.add_argument("--out", help="JSON path (default bench_results/data_<time>.json)")
    p.add_argument("--workers", default="0,1,2", help="worker counts, comma-separated")
    p.add_argument("--data", help="dataset folder (default: synthetic records)")
    p.add_argument("--records", type=int, default=4, help="records held in memory")
    p.add_argument("--examples", type=int, default=16, help="examples timed per run")
    p.add_argument("--frame-size", default="1080x1920", help="synthetic frame HxW")
    p.add_argument("--record-frames", type=int, default=10, help="synthetic annotated frames")
    p.add_argument("--objects", type=int, default=4, help="synthetic objects per record")
    p.add_argument("--num-frames", type=int, default=8, help="clip length T (1: images)")
    p.add_argument("--max-objects", type=int, default=3, help="objects per example O")
    p.add_argument("--resolution", type=int, default=1024, help="model resolution S")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument(
        "--pack-masks",
        type=int,
        default=1,
        choices=(0, 1),
        help="ship masks bit-packed, as the training config does",
    )
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def scene_record(seed: int, height: int, width: int, num_frames: int, num_objects: int) -> Record:
    """One synthetic record (JPEG frames, RLE masks) of a moving-object scene."""
    from data_pipelines.synthetic_scene import Scene  # pylint: disable=import-outside-toplevel

    scene = Scene(seed, height, width, num_objects, num_frames)
    rendered = [scene.render(t) for t in range(num_frames)]
    masks = np.stack([m for _, m in rendered])  # [T, K, H, W]
    keep = np.flatnonzero(masks.any(axis=(0, 2, 3)))
    counts = np.empty((num_frames, keep.size), dtype=object)
    for t in range(num_frames):
        for j, k in enumerate(keep):
            counts[t, j] = encode_rle(masks[t, k])
    return make_record(
        id=f"scene_{seed}",
        source="sav" if num_frames > 1 else "sa1b",
        file=f"<synthetic {seed}>",
        frames=[encode_jpeg(f) for f, _ in rendered],
        frame_indices=np.arange(num_frames) * 4,
        height=height,
        width=width,
        object_ids=keep + 1,
        rle_counts=counts,
        valid=np.ones(counts.shape, bool),
    )


def load_records(args: argparse.Namespace) -> list[Record]:
    """The benchmark's records, in memory."""
    if args.data:
        from data_pipelines.sources import open_source  # pylint: disable=import-outside-toplevel

        source = open_source(args.data)
        return [source[i] for i in range(min(args.records, len(source)))]
    try:
        h, w = (int(v) for v in args.frame_size.lower().split("x"))
    except ValueError as e:
        raise EtamError(
            f"--frame-size: expected HxW like 1080x1920, got {args.frame_size!r}"
        ) from e
    return [
        scene_record(args.seed * 1000 + i, h, w, args.record_frames, args.objects)
        for i in range(args.records)
    ]


class PeakMemory:
    """Samples the RSS of this process and its children in a thread; keeps the peaks."""

    def __init__(self, interval: float = 0.05):
        import psutil  # pylint: disable=import-outside-toplevel

        self.proc, self.interval, self._gone = psutil.Process(), interval, psutil.Error
        self.peak_total = self.peak_worker = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        rss = [c.memory_info().rss for c in self.proc.children(recursive=True) if c.is_running()]
        self.peak_worker = max([self.peak_worker, *rss])
        self.peak_total = max(self.peak_total, self.proc.memory_info().rss + sum(rss))

    def _safe_sample(self) -> None:
        try:
            self._sample()
        except self._gone:  # a child exited mid-sample: skip this sample
            return

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._safe_sample()

    def __enter__(self) -> PeakMemory:
        self._safe_sample()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._safe_sample()


def cpu_seconds() -> float:
    """User + system CPU time of this process and its live children."""
    import psutil  # pylint: disable=import-outside-toplevel

    me = psutil.Process()
    total = sum(me.cpu_times()[:2])
    for c in me.children(recursive=True):
        try:
            total += sum(c.cpu_times()[:2])
        except psutil.Error:
            pass
    return total


def decode_only(
    record: Record, sampling: SamplingSpec, augment: AugmentSpec | None, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """The ceiling: sample and decode as the pipeline does, nothing else.

    Returns only a pixel count, so worker processes do not ship full-size
    frames (which the pipeline never ships either) and only decoding is timed.
    """
    del augment
    frame_idx, obj_idx = sample_clip(record, sampling, rng)
    decoded = decode_record(record, frame_idx, obj_idx)
    return {"pixels": np.int64(decoded["frames"].size + decoded["masks"].size)}


def build(
    records: list[Record],
    sampling: SamplingSpec,
    augment: AugmentSpec | None,
    workers: int,
    args: argparse.Namespace,
) -> Any:
    """The benchmarked pipeline: decode-only (``augment=None``) or full."""
    import grain  # pylint: disable=import-outside-toplevel

    from data_pipelines.examples import ExampleMaker, make_example  # pylint: disable=import-outside-toplevel
    from data_pipelines.pipeline import PipelineSpec, prefetch  # pylint: disable=import-outside-toplevel

    # Repeated references: Grain's index_shuffle costs ~20 ms per index on a few elements.
    src = grain.MapDataset.source(records * -(-MIN_SOURCE_LEN // len(records)))
    make = make_example if augment is not None else decode_only
    maker = ExampleMaker(src, sampling, augment, make, pack_masks=bool(args.pack_masks))
    ds = src.seed(args.seed).shuffle().repeat().random_map(maker)
    ds = ds.batch(args.batch_size, drop_remainder=True)
    return prefetch(ds, PipelineSpec(sources=(), workers=workers))


def measure(
    records: list[Record],
    sampling: SamplingSpec,
    augment: AugmentSpec | None,
    workers: int,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """Times ``args.examples`` examples after a warm-up of one element per worker."""
    per_item = args.batch_size
    items = max(1, args.examples // per_item)
    it = iter(build(records, sampling, augment, workers, args))
    try:
        with PeakMemory() as mem:
            for _ in range(max(1, workers)):
                next(it)  # workers started, first elements done
            cpu0, t0 = cpu_seconds(), time.perf_counter()
            for _ in range(items):
                next(it)
            seconds, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
    finally:
        it.close()
    n = items * per_item
    return {
        "mode": "full" if augment is not None else "decode",
        "workers": workers,
        "examples": n,
        "seconds": round(seconds, 3),
        "examples_per_s": round(n / seconds, 3),
        "cpu_s": round(cpu, 3),
        "examples_per_cpu_s": round(n / max(cpu, 1e-9), 3),
        "peak_rss_mib": round(mem.peak_total / 2**20, 1),
        "peak_worker_rss_mib": round(mem.peak_worker / 2**20, 1),
    }


def table(results: list[dict[str, Any]]) -> str:
    """Fixed-width table of the runs."""
    cols = (
        "mode",
        "workers",
        "examples",
        "examples_per_s",
        "examples_per_cpu_s",
        "peak_rss_mib",
        "peak_worker_rss_mib",
    )
    rows = [cols] + [tuple(str(r[c]) for c in cols) for r in results]
    widths = [max(len(r[i]) for r in rows) for i in range(len(cols))]
    return "\n".join("  ".join(v.rjust(w) for v, w in zip(r, widths)) for r in rows)


def environment() -> dict[str, str]:
    import jax  # pylint: disable=import-outside-toplevel

    return {"backend": jax.default_backend(), "device_kind": jax.devices()[0].device_kind}


def main(argv: list[str]) -> int:
    """Runs the benchmark; prints the table and writes the JSON. Returns 0."""
    from absl import flags  # pylint: disable=import-outside-toplevel

    if not flags.FLAGS.is_parsed():  # grain's mp_prefetch reads absl flags
        flags.FLAGS.mark_as_parsed()
    args = parse_args(argv)
    workers = [int(w) for w in args.workers.split(",") if w.strip()]
    records = load_records(args)
    sampling = SamplingSpec(args.num_frames, args.max_objects)
    augment = AugmentSpec(resolution=args.resolution)
    results, ratios = [], {}
    for w in workers:
        ceiling = measure(records, sampling, None, w, args)
        full = measure(records, sampling, augment, w, args)
        ratios[str(w)] = round(full["examples_per_cpu_s"] / ceiling["examples_per_cpu_s"], 3)
        results += [ceiling, full]
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d_%H%M%S")
    out = Path(args.out or f"bench_results/data_{stamp}.json")
    report = {
        "what": "data",
        "command": ["etam", "bench", "data", *argv],
        "time": stamp,
        **environment(),
        "settings": vars(args),
        "results": results,
        "full_vs_decode_per_cpu_s": ratios,
        "target": TARGET,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(table(results))
    print(
        "full / decode (examples per CPU-second): "
        + ", ".join(f"{w} workers {r:.2f}" for w, r in ratios.items())
        + f"  (target >= {TARGET})"
    )
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
