"""scripts/launch_tpu.py: the exact gcloud command lines, reuse, delete, topology, errors."""

from __future__ import annotations

import importlib.util
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from etam_jax.errors import EtamError
from etam_jax.training.tpu_slices import tpu_slice

ROOT = Path(__file__).resolve().parents[2]
GCLOUD = "gcloud compute tpus tpu-vm"
INSTALL = (
    "rm -rf ~/etam-jax && tar -xzf ~/etam-jax.tar.gz -C ~"
    " && (test -x ~/.local/bin/uv || curl -LsSf https://astral.sh/uv/install.sh | sh)"
    " && ~/.local/bin/uv venv --allow-existing --python 3.11 ~/etam-venv"
    " && ~/.local/bin/uv pip install --python ~/etam-venv/bin/python -e ~/etam-jax"
    " 'jax[tpu]==0.10.2' gcsfs"
)


def _load_launcher():
    spec = importlib.util.spec_from_file_location("launch_tpu", ROOT / "scripts" / "launch_tpu.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


launch_tpu = _load_launcher()


def options(accelerator_type: str, **kw) -> launch_tpu.LaunchOptions:
    return launch_tpu.LaunchOptions(
        **{
            "name": "etam-run",
            "zone": "us-east5-a",
            "accelerator_type": accelerator_type,
            "config": "experiments/configs/sav.py",
            "workdir": "gs://bucket/runs/sav",
            "jax_version": "0.10.2",
            **kw,
        }
    )


def joined(commands: list[list[str]]) -> list[str]:
    return [shlex.join(c) for c in commands]


def expected_launch(zone_flags: str, version: str, workers: str, preset: str) -> list[str]:
    """The command lines of a fresh launch, written out by hand."""
    train = (
        "set -o pipefail; cd ~/etam-jax && ~/etam-venv/bin/etam train"
        " --config experiments/configs/sav.py --workdir gs://bucket/runs/sav"
        f" --config.mesh.preset={preset} 2>&1 | tee ~/etam-train.log"
    )
    return [
        (
            f"{GCLOUD} create etam-run {zone_flags} --accelerator-type={preset_type(preset)} "
            f"--version={version}"
        ),
        (
            f"git -C {shlex.quote(str(ROOT))} archive --format=tar.gz --prefix=etam-jax/"
            " -o /tmp/etam-run-etam-jax.tar.gz HEAD"
        ),
        (
            f"{GCLOUD} scp /tmp/etam-run-etam-jax.tar.gz etam-run:etam-jax.tar.gz {zone_flags}"
            " --worker=all"
        ),
        f"{GCLOUD} ssh etam-run {zone_flags} --worker=all {shlex.quote('--command=' + INSTALL)}",
        "mkdir -p logs/etam-run",
        (
            f"{GCLOUD} ssh etam-run {zone_flags} --worker={workers}"
            f" {shlex.quote('--command=' + train)} --output-directory=logs/etam-run"
        ),
    ]


def preset_type(preset: str) -> str:
    return preset.replace("v5e-", "v5litepod-")


def test_v5p_32_launch_commands():
    got = joined(launch_tpu.launch_commands(options("v5p-32"), existing_type=None))
    assert got == expected_launch("--zone=us-east5-a", "v2-alpha-tpuv5", "0-3", "v5p-32")


def test_v4_8_launch_commands_single_host_with_project():
    got = joined(launch_tpu.launch_commands(options("v4-8", project="proj"), existing_type=None))
    zone = "--zone=us-east5-a --project=proj"
    assert got == expected_launch(zone, "tpu-ubuntu2204-base", "0", "v4-8")


def test_reuse_skips_create_and_checks_the_type():
    fresh = launch_tpu.launch_commands(options("v5p-32"), existing_type=None)
    reused = launch_tpu.launch_commands(options("v5p-32"), existing_type="v5p-32")
    assert reused == fresh[1:] and "create" in fresh[0]
    with pytest.raises(EtamError, match="exists as v4-8, not --accelerator-type v5p-32"):
        launch_tpu.launch_commands(options("v5p-32"), existing_type="v4-8")


def test_describe_and_delete_commands():
    opts = options("v5p-32")
    assert shlex.join(launch_tpu.describe_command(opts)) == (
        f"{GCLOUD} describe etam-run --zone=us-east5-a '--format=value(acceleratorType,state)'"
    )
    assert shlex.join(launch_tpu.delete_command(opts)) == (
        f"{GCLOUD} delete etam-run --zone=us-east5-a --quiet"
    )


def test_collect_logs_one_copy_per_worker():
    got = joined(launch_tpu.collect_logs_commands(options("v5p-32")))
    assert got == ["mkdir -p logs/etam-run"] + [
        f"{GCLOUD} scp etam-run:etam-train.log logs/etam-run/{w}.log --zone=us-east5-a --worker={w}"
        for w in range(4)
    ]


def test_detach_clone_spot_train_args_and_gcsfuse():
    opts = options(
        "v5litepod-16",
        detach=True,
        spot=True,
        repo_url="https://example.com/etam-jax.git",
        ref="v1",
        gcsfuse=("data-bucket",),
        train_args=("--config.train.steps=10", "--config.name=a b"),
    )
    create, install, train = launch_tpu.launch_commands(opts, existing_type=None)
    assert create[-2:] == ["--version=v2-alpha-tpuv5-lite", "--spot"]
    assert install[-1].startswith(
        "--command=rm -rf ~/etam-jax && git clone https://example.com/etam-jax.git ~/etam-jax"
        " && git -C ~/etam-jax checkout v1 && "
    )
    assert install[-1].endswith("gcsfuse --implicit-dirs data-bucket /mnt/gcs/data-bucket)")
    assert train[-2:] == [
        "--worker=0-3",
        (
            "--command=cd ~/etam-jax && nohup ~/etam-venv/bin/etam train --config "
            "experiments/configs/sav.py --workdir gs://bucket/runs/sav --config.mesh.preset=v5e-16 "
            "--config.train.steps=10 '--config.name=a b' > ~/etam-train.log 2>&1 < /dev/null &"
        ),
    ]


@pytest.mark.parametrize(
    "accelerator_type, chips, hosts",
    # Cloud TPU docs: v4 / v5p count TensorCores (2 per chip), 4 chips per VM;
    # v5litepod counts chips, one VM up to 8 chips, 4 chips per VM beyond.
    [
        ("v4-8", 4, 1),
        ("v4-32", 16, 4),
        ("v5p-8", 4, 1),
        ("v5p-32", 16, 4),
        ("v5p-128", 64, 16),
        ("v5litepod-4", 4, 1),
        ("v5litepod-8", 8, 1),
        ("v5litepod-16", 16, 4),
        ("v5litepod-256", 256, 64),
    ],
)
def test_topology(accelerator_type, chips, hosts):
    tpu = tpu_slice(accelerator_type)
    assert (tpu.chips, tpu.hosts, tpu.chips_per_host) == (chips, hosts, chips // hosts)


@pytest.mark.parametrize("bad", ["v5p-33", "v6e-8", "v5e-16", "tpu"])
def test_bad_accelerator_type(bad, capsys, monkeypatch):
    with pytest.raises(
        EtamError, match=f"--accelerator-type '{bad}' is not supported; known: v4-8"
    ):
        tpu_slice(bad)
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("ran a command"))
    argv = ["--name", "n", "--zone", "z", "--accelerator-type", bad, "--config", "c.py"]
    assert launch_tpu.main([*argv, "--workdir", "gs://b/w"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and "is not supported" in err


def test_multi_host_needs_a_gcs_workdir():
    with pytest.raises(EtamError, match="shared by the 4 hosts of v5p-32"):
        launch_tpu.launch_commands(options("v5p-32", workdir="/tmp/run"), existing_type=None)


def test_dry_run_prints_every_command_and_runs_none(capsys, monkeypatch):
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("ran a command"))
    argv = ["--name", "etam-run", "--zone", "us-east5-a", "--accelerator-type", "v5p-32"]
    argv += ["--config", "experiments/configs/sav.py", "--workdir", "gs://bucket/runs/sav"]
    assert launch_tpu.main([*argv, "--jax-version", "0.10.2", "--dry-run"]) == 0
    printed = [ln[2:] for ln in capsys.readouterr().out.splitlines() if ln.startswith("$ ")]
    describe = joined([launch_tpu.describe_command(options("v5p-32"))])
    assert printed == describe + expected_launch(
        "--zone=us-east5-a", "v2-alpha-tpuv5", "0-3", "v5p-32"
    )


@pytest.mark.parametrize(
    "describe_rc, describe_out, creates, error",
    [
        (1, "", True, None),  # no such slice
        (0, "v5p-32\tREADY\n", False, None),  # reused
        (0, "v5p-32\tPREEMPTED\n", False, "is PREEMPTED, not READY"),
    ],
)
def test_main_runs_describe_then_the_plan(
    describe_rc, describe_out, creates, error, capsys, monkeypatch
):
    ran = []

    def fake_run(command, check, **kwargs):
        ran.append(shlex.join(command))
        rc, out = (describe_rc, describe_out) if "describe" in command else (0, "")
        return subprocess.CompletedProcess(command, rc, stdout=out)

    monkeypatch.setattr(subprocess, "run", fake_run)
    argv = ["--name", "etam-run", "--zone", "us-east5-a", "--accelerator-type", "v5p-32"]
    argv += ["--config", "experiments/configs/sav.py", "--workdir", "gs://bucket/runs/sav"]
    assert launch_tpu.main([*argv, "--jax-version", "0.10.2"]) == (1 if error else 0)
    plan = expected_launch("--zone=us-east5-a", "v2-alpha-tpuv5", "0-3", "v5p-32")
    describe = joined([launch_tpu.describe_command(options("v5p-32"))])
    if error:
        assert ran == describe and error in capsys.readouterr().err
    else:
        assert ran == describe + (plan if creates else plan[1:])
