"""A model trained with `etam train` goes everywhere a --checkpoint goes (issue 15).

One real tiny run (experiments/configs/tiny.py: efficienttam_ti's names, a 2-block
trunk, 64 px), then, all from the CLI: `etam convert to-pytorch` (the .pt loads
strictly into the official model built with the same architecture and holds the
trained values), `etam eval`, `etam track` from the workdir and from a step folder
(the same logits), `etam export`, and a second run initialised from the first
run's workdir (lr 0: its checkpoint holds the first run's weights exactly).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from flax.traverse_util import flatten_dict

from data_pipelines.synthetic import write_davis, write_sav
from etam_jax.cli import main as etam
from etam_jax.convert.checkpoint_io import (
    checkpoint_model_config,
    load_model,
    read_training_params,
    training_step_dir,
)
from etam_jax.convert.naming import to_torch_arrays
from etam_jax.inference.demo_video import write_demo_video
from tests.child_env import child_env
from tests.official_reference import official_config

ROOT = Path(__file__).resolve().parents[2]
TINY = str(ROOT / "experiments" / "configs" / "tiny.py")
STEPS = 3


def train(workdir: Path, sav: Path, *flags: str) -> None:
    """A real `etam train` process on one CPU device (the tests' own has 8)."""
    argv = [
        sys.executable,
        "-m",
        "etam_jax.cli",
        "train",
        "--config",
        TINY,
        "--workdir",
        str(workdir),
        f"--config.data.sources.sav.path={sav}",
        f"--config.train.total_steps={STEPS}",
        f"--config.checkpoint.every_steps={STEPS}",
        *flags,
    ]
    proc = subprocess.run(
        argv, env=child_env(devices=1), capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("trained")
    write_sav(base / "sav", num_videos=2, size=(64, 96), num_frames=12, num_objects=2)
    train(base / "run", base / "sav")
    return base, base / "run"


def _official_tiny():
    """The official SAM2Base with tiny.py's architecture (hydra config overrides)."""
    from hydra.utils import instantiate

    cfg = official_config("efficienttam_ti", 64)
    cfg.model.image_encoder.trunk.depth = 2
    cfg.model.image_encoder.trunk.window_block_indexes = [0]
    cfg.model.memory_attention.num_layers = 1
    return instantiate(cfg.model, _recursive_=True)


def test_the_run_records_its_architecture(run):
    _, workdir = run
    step_dir = training_step_dir(workdir)
    assert step_dir == workdir / "checkpoints" / str(STEPS)
    arch = checkpoint_model_config(workdir)
    assert arch.image_encoder.trunk.depth == 2 and arch.image_size == 64
    model = load_model("efficienttam_ti", workdir)
    assert len(model.image_encoder.trunk.blocks) == 2


def test_to_pytorch_loads_strictly_into_the_official_model(run):
    base, workdir = run
    pt = base / "trained.pt"
    assert etam(["convert", "to-pytorch", "--model", "efficienttam_ti", str(workdir), str(pt)]) == 0
    state_dict = torch.load(pt, weights_only=True)["model"]
    official = _official_tiny()
    official.load_state_dict(state_dict, strict=True)
    # the values are the run's: the converted arrays equal the TrainState's params
    trained = read_training_params(training_step_dir(workdir))
    model = load_model("efficienttam_ti", workdir)
    want = to_torch_arrays(model)
    for key, value in official.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), want[key], err_msg=key)
    flat = flatten_dict(trained)
    qkv = flat[("image_encoder", "trunk", "blocks", "1", "attn", "qkv", "kernel")]
    np.testing.assert_array_equal(
        state_dict["image_encoder.trunk.blocks.1.attn.qkv.weight"].numpy(), np.asarray(qkv).T
    )


def test_eval_track_and_export_read_the_workdir(run):
    base, workdir = run
    write_davis(base / "davis", num_videos=1, size=(64, 96), num_frames=4, num_objects=1)
    assert (
        etam(
            [
                "eval",
                "--model",
                "efficienttam_ti",
                "--checkpoint",
                str(workdir),
                "--data",
                str(base / "davis"),
                "--out",
                str(base / "eval"),
                "--no-progress",
            ]
        )
        == 0
    )
    summary = json.loads((base / "eval" / "summary.json").read_text())
    assert summary["videos"] == 1 and 0.0 <= summary["J&F"] <= 1.0

    frames, prompts = write_demo_video(str(base / "video"), 3, size=(48, 80), num_objects=1)
    logits = {}
    for name, ckpt in (("workdir", workdir), ("step", workdir / "checkpoints" / str(STEPS))):
        out = base / f"track_{name}"
        assert (
            etam(
                [
                    "track",
                    "--model",
                    "efficienttam_ti",
                    "--checkpoint",
                    str(ckpt),
                    "--frames",
                    frames,
                    "--prompts",
                    prompts,
                    "--out",
                    str(out),
                    "--save-logits",
                ]
            )
            == 0
        )
        logits[name] = sorted(out.rglob("*.npy"))
        assert len(logits[name]) == 3
    for a, b in zip(*logits.values()):
        np.testing.assert_array_equal(np.load(a), np.load(b))

    assert (
        etam(
            [
                "export",
                "--model",
                "efficienttam_ti",
                "--checkpoint",
                str(workdir),
                "--out",
                str(base / "export"),
            ]
        )
        == 0
    )
    assert any((base / "export").iterdir())


def test_a_second_stage_starts_from_the_first_runs_workdir(run):
    base, workdir = run
    stage2 = base / "stage2"
    train(
        stage2,
        base / "sav",
        f"--config.checkpoint.init_from={workdir}",
        "--config.optimizer.lr=0.0",
        "--config.optimizer.encoder_lr=0.0",
    )
    got = flatten_dict(read_training_params(training_step_dir(stage2)))
    want = flatten_dict(read_training_params(training_step_dir(workdir)))
    assert got.keys() == want.keys()
    for key in want:
        np.testing.assert_array_equal(got[key], want[key], err_msg=".".join(key))
