"""`etam train` end to end on the tiny config: a run preempted by SIGTERM, restarted,
killed with -9 and restarted again replays the uninterrupted run's loss sequence
bitwise; validation reaches metrics and TensorBoard; config typos fail before
anything compiles.

Each run is a real `etam train` process. They share a persistent compilation
cache (JAX_COMPILATION_CACHE_DIR), so only the first run pays for compiling.
The uninterrupted run validates (every 4 steps) and the interrupted ones do
not: validation must leave the training sequence alone.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from data_pipelines.synthetic import write_sav
from etam_jax.cli import main as etam_main
from tests.child_env import child_env

ROOT = Path(__file__).resolve().parents[2]
CONFIG = str(ROOT / "experiments" / "configs" / "tiny.py")
STEPS = 8  # tiny.py: checkpoints every 3 steps


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    base = tmp_path_factory.mktemp("train_loop")
    write_sav(base / "sav", num_videos=2, size=(64, 96), num_frames=12, num_objects=2)
    child = child_env(  # one device: mesh (1, 1, 1); every run compiles alike (unoptimised)
        devices=1,
        JAX_COMPILATION_CACHE_DIR=str(base / "jax_cache"),
        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
    )
    return base, child


def _command(base: Path, workdir: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "etam_jax.cli",
        "train",
        "--config",
        CONFIG,
        "--workdir",
        str(workdir),
        f"--config.data.sources.sav.path={base / 'sav'}",
    ]


def _losses(workdir: Path) -> dict[int, float]:
    rows = [json.loads(x) for x in (workdir / "metrics.jsonl").read_text().splitlines() if x]
    return {r["step"]: r["loss"] for r in rows if "loss" in r}


def _run(base, env, workdir, extra=(), timeout=900) -> None:
    proc = subprocess.run(
        _command(base, workdir) + list(extra),
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]


def _interrupt(base, env, workdir, sig, after_step) -> subprocess.CompletedProcess:
    """Starts a run and sends ``sig`` once step ``after_step`` is logged."""
    proc = subprocess.Popen(
        _command(base, workdir), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.time() + 900
    try:
        while time.time() < deadline and proc.poll() is None:
            if (workdir / "metrics.jsonl").exists() and max(
                _losses(workdir), default=0
            ) >= after_step:
                proc.send_signal(sig)
                break
            time.sleep(0.2)
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert max(_losses(workdir)) < STEPS, "the run finished before it could be interrupted"
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


VALIDATE_EVERY = 4


@pytest.fixture(scope="module")
def uninterrupted(env):
    from data_pipelines.synthetic import write_davis

    base, child = env
    write_davis(base / "davis", num_videos=1, size=(64, 96), num_frames=4, num_objects=2)
    validation = [
        f"--config.eval.data={base / 'davis'}",
        f"--config.eval.every_steps={VALIDATE_EVERY}",
    ]
    _run(base, child, base / "reference", extra=validation)
    losses = _losses(base / "reference")
    assert sorted(losses) == list(range(1, STEPS + 1))
    return losses


def test_preempted_then_killed_run_replays_the_losses_bitwise(env, uninterrupted):
    from etam_jax.training.checkpoints import Checkpointer, default_config

    base, child = env
    workdir = base / "interrupted"
    done = _interrupt(base, child, workdir, signal.SIGTERM, after_step=4)
    assert done.returncode == 0, done.stderr[-3000:]
    last_logged = max(_losses(workdir))
    saved = Checkpointer(workdir, default_config(), "efficienttam_ti").all_steps()
    assert saved[-1] == last_logged and saved[-1] % 3  # the preemption save, off the interval
    # Restarted from the preemption save; killed once step 7 is logged, so the last
    # checkpoint is the interval's (step 6) and step 7's row is replayed.
    _interrupt(base, child, workdir, signal.SIGKILL, after_step=7)
    assert Checkpointer(workdir, default_config(), "efficienttam_ti").all_steps()[-1] == 6
    _run(base, child, workdir)
    assert _losses(workdir) == uninterrupted  # the rows after each restart were replayed, bitwise


def test_config_typo_fails_naming_the_field(tmp_path, capsys):
    code = etam_main(
        ["train", "--config", CONFIG, "--workdir", str(tmp_path / "w"), "--config.optimizer.lrr=1"]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert "optimizer.lrr" in err and "lr" in err
    assert not (tmp_path / "w").exists()


def test_checkpoint_of_another_model_fails_with_both_names(env, uninterrupted, tmp_path):
    base, child = env
    proc = subprocess.run(
        _command(base, base / "reference") + ["--config.model.name=efficienttam_s"],
        env=child,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 1
    assert "efficienttam_ti" in proc.stderr and "efficienttam_s" in proc.stderr


def test_validation_scores_and_overlays_reach_metrics_and_tensorboard(env, uninterrupted):
    del uninterrupted  # the run that validated
    base, _ = env
    workdir = base / "reference"
    rows = [json.loads(x) for x in (workdir / "metrics.jsonl").read_text().splitlines() if x]
    val = [r for r in rows if "val_J&F" in r]
    assert [r["step"] for r in val] == list(range(VALIDATE_EVERY, STEPS + 1, VALIDATE_EVERY))
    assert all(0.0 <= r["val_J&F"] <= 1.0 for r in val)
    tags = _event_tags(workdir / "tb")
    assert "val_JandF" in tags["simple_value"] and "loss" in tags["simple_value"]
    assert len([t for t in tags["image"] if t.startswith("val_predictions/")]) == 4


def _event_tags(folder: Path) -> dict[str, set[str]]:
    """Summary tags per value kind in TensorBoard event files (TFRecord framing read by hand)."""
    import struct

    from tensorboardX.proto import event_pb2

    tags: dict[str, set[str]] = {"simple_value": set(), "image": set()}
    for path in folder.glob("events.out.tfevents.*"):
        data, pos = path.read_bytes(), 0
        while pos < len(data):
            (length,) = struct.unpack("<Q", data[pos : pos + 8])
            event = event_pb2.Event.FromString(data[pos + 12 : pos + 12 + length])
            pos += 12 + length + 4  # length, its crc, the record, its crc
            for value in event.summary.value:
                kind = value.WhichOneof("value")
                if kind in tags:
                    tags[kind].add(value.tag)
    return tags
