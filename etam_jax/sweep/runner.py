"""Runs a sweep point by point: train -> eval -> bench, each in a subprocess.

Layout under the sweep's workdir, per point ``P``::

    P/model_config.json the model section of the point's training config (for eval and bench)
    P/train/            etam train --workdir (metrics.jsonl, checkpoints/)
    P/train.json        written when training exited 0 (the stage is then skipped)
    P/eval/summary.json python -m etam_jax.sweep.evaluate --out (skipped when present)
    P/bench.json        python -m etam_jax.sweep.bench --out (skipped when present)
    P/result.json       the point's table row; a point with it is skipped entirely
    P/logs/<stage>.log  each subprocess's stdout and stderr

Points run one after another (each training run uses the whole machine); a
failed point is reported and the others still run.
"""

from __future__ import annotations

import dataclasses
import shlex
import subprocess
import sys
import time
from pathlib import Path

from etam_jax.errors import EtamError
from etam_jax.sweep.definition import Point, Sweep, fill_data, override_flags
from etam_jax.sweep.files import read_json, write_json
from etam_jax.sweep.results import point_row
from etam_jax.sweep.training_config import (
    MODEL_CONFIG_FILE,
    check_trained,
    write_model_config,
)

RESULT_FILE = "result.json"
_LOG_TAIL_LINES = 20


@dataclasses.dataclass(frozen=True)
class Stage:
    """One subprocess of a point: its command line and the file whose presence means done."""

    name: str
    argv: list[str]
    done: Path


def train_argv(point: Point, train_dir: str | Path, data: str | None) -> list[str]:
    """``etam train`` arguments (without the program) for ``point``."""
    overrides = override_flags(point.overrides, data)
    return ["train", "--config", point.config, "--workdir", str(train_dir), *overrides]


def eval_argv(sweep: Sweep, point_dir: Path, data: str | None) -> list[str]:
    """Arguments of the eval stage (:mod:`etam_jax.sweep.evaluate`): the point's trained
    weights in the model it trained (`etam eval` knows models by official name only)."""
    return [
        "--model-config", str(point_dir / MODEL_CONFIG_FILE),
        "--checkpoint", str(point_dir / "train" / "checkpoints"),
        "--data", fill_data(sweep.eval_data, data),
        "--out", str(point_dir / "eval"),
    ]  # fmt: skip


def point_stages(sweep: Sweep, point: Point, point_dir: Path, data: str | None) -> list[Stage]:
    """The three stages of ``point``, as commands run with this Python."""
    python = [sys.executable, "-m"]
    train = [*python, "etam_jax.cli", *train_argv(point, point_dir / "train", data)]
    evaluate = [*python, "etam_jax.sweep.evaluate", *eval_argv(sweep, point_dir, data)]
    bench_out = point_dir / "bench.json"
    model_config = str(point_dir / MODEL_CONFIG_FILE)
    bench = [
        *python,
        "etam_jax.sweep.bench",
        "--model-config",
        model_config,
        "--out",
        str(bench_out),
    ]
    return [
        Stage("train", train, point_dir / "train.json"),
        Stage("eval", evaluate, point_dir / "eval" / "summary.json"),
        Stage("bench", bench, bench_out),
    ]


def run_stage(stage: Stage, log: Path) -> float:
    """Runs ``stage`` with output to ``log``; returns its seconds. EtamError (with the log's tail) on failure."""
    log.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with open(log, "w") as f:
        f.write(shlex.join(stage.argv) + "\n")
        f.flush()
        code = subprocess.call(stage.argv, stdout=f, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - start
    if code != 0:
        tail = "\n".join(log.read_text().splitlines()[-_LOG_TAIL_LINES:])
        raise EtamError(f"{stage.name} failed (exit {code}); log {log}, last lines:\n{tail}")
    return seconds


def run_point(sweep: Sweep, point: Point, workdir: Path, data: str | None) -> dict:
    """Runs the stages of ``point`` not yet done and writes its ``result.json``; returns the row."""
    point_dir = workdir / point.name
    write_model_config(point, point_dir)  # also checks every override names a config field
    for stage in point_stages(sweep, point, point_dir, data):
        if stage.done.exists():
            print(f"[{point.name}] {stage.name}: done before, skipped", flush=True)
            continue
        print(f"[{point.name}] {stage.name}: {shlex.join(stage.argv)}", flush=True)
        seconds = run_stage(stage, point_dir / "logs" / f"{stage.name}.log")
        if stage.name == "train":  # etam train writes no completion marker of its own
            step = check_trained(point, point_dir / "train")
            write_json(stage.done, {"seconds": seconds, "step": step, "argv": stage.argv})
        print(f"[{point.name}] {stage.name}: {seconds:.0f} s", flush=True)
    row = point_row(
        point,
        read_json(point_dir / "eval" / "summary.json"),
        read_json(point_dir / "bench.json"),
        point_dir / "train" / "metrics.jsonl",
    )
    write_json(point_dir / RESULT_FILE, row)
    return row


def run_sweep(sweep: Sweep, points: list[Point], workdir: Path, data: str | None) -> list[str]:
    """Runs every point of ``points`` without a ``result.json``; returns the names that failed."""
    failed = []
    for point in points:
        if (workdir / point.name / RESULT_FILE).exists():
            print(f"[{point.name}] finished before, skipped", flush=True)
            continue
        try:
            run_point(sweep, point, workdir, data)
        except EtamError as e:
            print(f"[{point.name}] FAILED: {e}", file=sys.stderr, flush=True)
            failed.append(point.name)
    return failed
