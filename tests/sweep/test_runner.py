"""The runner's stage commands and its skipping of finished work (stages faked by tiny scripts)."""

import json
import sys

from etam_jax.sweep import runner
from etam_jax.sweep.definition import Sweep, pooling_point
from etam_jax.sweep.files import read_json, write_json
from etam_jax.sweep.runner import Stage, run_sweep
from tests.sweep.test_definition import ROOT

DEMO = str(ROOT / "experiments" / "configs" / "demo.py")
POINTS = tuple(
    pooling_point("efficienttam_ti", DEMO, 128, pooling, {"train.total_steps": 2})
    for pooling in ((1, "none"), (2, "eq5"))
)
SWEEP = Sweep(points=POINTS, eval_data="{data}/davis")

# Each fake stage logs its name to calls.txt and writes what the real one would; train saves a
# checkpoint at step `steps` (2 = the points' train.total_steps).
_SCRIPT = """
import json, pathlib, sys
name, done, calls, fail, steps = sys.argv[1:6]
with open(calls, "a") as f: f.write(name + "\\n")
if fail == name: sys.exit(3)
if name == "train":
    (pathlib.Path(done).parent / "train" / "checkpoints" / steps).mkdir(parents=True)
record = {"eval": {"J&F": 55.0}, "bench": {"mem_attn_flops": 1e9, "latency_ms": 2.0}}.get(name)
if record:
    pathlib.Path(done).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(done).write_text(json.dumps(record))
"""


def fake_stages(calls, fail="", steps=2):
    def stages(sweep, point, point_dir, data):
        done = {
            "train": point_dir / "train.json",
            "eval": point_dir / "eval" / "summary.json",
            "bench": point_dir / "bench.json",
        }
        return [
            Stage(n, [sys.executable, "-c", _SCRIPT, n, str(d), str(calls), fail, str(steps)], d)
            for n, d in done.items()
        ]

    return stages


def test_stage_commands_carry_the_point(tmp_path):
    point_dir = tmp_path / "ti_w2_eq5"
    train, evaluate, bench = runner.point_stages(SWEEP, POINTS[1], point_dir, "/data")
    assert train.argv[1:] == [
        "-m", "etam_jax.cli", "train", "--config", DEMO, "--workdir", str(point_dir / "train"),
        "--config.train.total_steps=2",
        "--config.model.name=efficienttam_ti",
        "--config.model.image_size=128",
        "--config.data.augment.resolution=128",
        "--config.model.memory_attention.pool_window=2",
        "--config.model.memory_attention.pool_correction=eq5",
    ]  # fmt: skip
    assert evaluate.argv[1:] == [
        "-m", "etam_jax.sweep.evaluate", "--model-config", str(point_dir / "model_config.json"),
        "--checkpoint", str(point_dir / "train" / "checkpoints"), "--data", "/data/davis",
        "--out", str(point_dir / "eval"),
    ]  # fmt: skip
    assert bench.argv[1:] == [
        "-m", "etam_jax.sweep.bench", "--model-config", str(point_dir / "model_config.json"),
        "--out", str(point_dir / "bench.json"),
    ]  # fmt: skip
    assert [s.done for s in (train, evaluate, bench)] == [
        point_dir / "train.json", point_dir / "eval" / "summary.json", point_dir / "bench.json",
    ]  # fmt: skip


def test_finished_points_and_stages_are_skipped(tmp_path, monkeypatch):
    calls = tmp_path / "calls.txt"
    monkeypatch.setattr(runner, "point_stages", fake_stages(calls))
    write_json(tmp_path / "ti_w1_none" / "result.json", {"point": "ti_w1_none"})  # finished point
    # Evaluated, not benched:
    write_json(tmp_path / "ti_w2_eq5" / "eval" / "summary.json", {"J&F": 61.0})
    assert run_sweep(SWEEP, list(POINTS), tmp_path, None) == []
    assert calls.read_text().split() == ["train", "bench"]
    row = read_json(tmp_path / "ti_w2_eq5" / "result.json")
    assert row["J&F"] == 61.0 and row["mem_attn_gflops"] == 1.0 and row["window"] == 2
    model = read_json(tmp_path / "ti_w2_eq5" / "model_config.json")  # what eval and bench build
    assert (
        model["memory_attention"]["pool_window"] == 2
        and model["image_encoder"]["trunk"]["depth"] == 4
    )
    assert json.loads((tmp_path / "ti_w2_eq5" / "train.json").read_text())["step"] == 2
    assert run_sweep(SWEEP, list(POINTS), tmp_path, None) == []  # all finished: nothing runs
    assert calls.read_text().split() == ["train", "bench"]


def test_a_failed_stage_fails_its_point_only(tmp_path, monkeypatch):
    calls = tmp_path / "calls.txt"
    monkeypatch.setattr(runner, "point_stages", fake_stages(calls, fail="eval"))
    assert run_sweep(SWEEP, list(POINTS), tmp_path, None) == ["ti_w1_none", "ti_w2_eq5"]
    assert calls.read_text().split() == ["train", "eval"] * 2
    assert not (tmp_path / "ti_w1_none" / "result.json").exists()
    assert (tmp_path / "ti_w1_none" / "logs" / "eval.log").read_text().startswith(sys.executable)
    monkeypatch.setattr(runner, "point_stages", fake_stages(calls))
    # A re-run resumes after the trained stage.
    assert run_sweep(SWEEP, list(POINTS), tmp_path, None) == []
    assert calls.read_text().split() == ["train", "eval"] * 2 + ["eval", "bench"] * 2


def test_a_run_stopped_before_its_last_step_is_not_done(tmp_path, monkeypatch, capsys):
    # `etam train` exits 0 when preempted, after saving the step it reached.
    calls = tmp_path / "calls.txt"
    monkeypatch.setattr(runner, "point_stages", fake_stages(calls, steps=1))
    assert run_sweep(SWEEP, list(POINTS[:1]), tmp_path, None) == ["ti_w1_none"]
    assert "stopped at step 1 of 2" in capsys.readouterr().err
    assert not (tmp_path / "ti_w1_none" / "train.json").exists() and calls.read_text() == "train\n"
