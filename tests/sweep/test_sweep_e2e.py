"""`etam sweep` end to end on the ci variant: real `etam train`, eval and bench, twice.

Two points (no pooling; window 2 with Eq. 5) of a tiny model on generated
data. The second run must skip both finished points and rewrite the tables.
"""

import csv
import subprocess
import sys

from tests.child_env import child_env
from tests.sweep.test_definition import ROOT, SWEEP_FILE


def etam(*args: str) -> subprocess.CompletedProcess:
    """The command in a fresh process on this machine's one CPU device (the test session fakes
    8, which a batch of 1 cannot be split over), compiled unoptimised."""
    argv = [sys.executable, "-m", "etam_jax.cli", *args]
    return subprocess.run(
        argv, check=False, cwd=ROOT, env=child_env(devices=1), capture_output=True, text=True
    )


def test_ci_sweep_trains_evaluates_benches_and_skips_on_rerun(tmp_path):
    data, workdir = tmp_path / "data", tmp_path / "sweep"
    made = etam("data", "synth", "--out", str(data), "--kinds", "sav,davis",
                "--size", "96x128", "--count", "2", "--num-frames", "8")  # fmt: skip
    assert made.returncode == 0, made.stderr
    sweep = ["sweep", str(SWEEP_FILE), "--variant", "ci", "--workdir", str(workdir)]
    first = etam(*sweep, "--data", str(data))
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    with open(workdir / "results.csv") as f:
        rows = {row["point"]: row for row in csv.DictReader(f)}
    assert sorted(rows) == ["ti_w1_none", "ti_w2_eq5"]
    for row in rows.values():
        assert 0.0 <= float(row["J&F"]) <= 1.0 and float(row["latency_ms"]) > 0
        assert int(row["train_steps"]) == 2 and row["image_size"] == "64"
    # Pooling by 2 shrinks the memory cross-attention's keys (7 slots x 16 tokens -> 7 x 4).
    assert float(rows["ti_w2_eq5"]["mem_attn_gflops"]) < float(
        rows["ti_w1_none"]["mem_attn_gflops"]
    )
    for point in rows:
        assert (workdir / point / "train" / "checkpoints" / "2").is_dir()
        assert (workdir / point / "eval" / "summary.json").is_file()
    assert (workdir / "results.png").stat().st_size > 0
    stamps = {p: (workdir / p / "result.json").stat().st_mtime_ns for p in rows}
    second = etam(*sweep)  # no --data: nothing may need it
    assert second.returncode == 0, second.stderr[-3000:]
    assert second.stdout.count("finished before, skipped") == 2
    assert {p: (workdir / p / "result.json").stat().st_mtime_ns for p in rows} == stamps
