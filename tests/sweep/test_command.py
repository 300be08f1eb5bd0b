"""`etam sweep` through the CLI: emitted launch commands, and tables from finished points."""

import shlex

from etam_jax import cli
from etam_jax.sweep.files import import_file, write_json
from tests.sweep.test_definition import ROOT, SWEEP_FILE
from tests.sweep.test_results import ROWS


def emitted(capsys, *args):
    assert cli.main(["sweep", str(SWEEP_FILE), *args]) == 0
    return [shlex.split(line) for line in capsys.readouterr().out.splitlines()]


def test_emit_local_prints_one_train_command_per_point(capsys, tmp_path):
    argv = [
        "--workdir",
        str(tmp_path),
        "--variant",
        "local",
        "--data",
        "/d",
        "--emit-launch",
        "local",
    ]
    lines = emitted(capsys, *argv)
    assert len(lines) == 7 and all(line[:2] == ["etam", "train"] for line in lines)
    ti_w4_eq6 = lines[-1]
    assert ti_w4_eq6[ti_w4_eq6.index("--workdir") + 1] == str(tmp_path / "ti_w4_eq6" / "train")
    assert ti_w4_eq6[ti_w4_eq6.index("--config") + 1] == "experiments/configs/demo.py"
    for flag in (
        "--config.model.memory_attention.pool_window=4",
        "--config.model.memory_attention.pool_correction=eq6",
        "--config.model.image_size=64",
        "--config.train.total_steps=650",
        "--config.data.sources.sav.path=/d/sav",
    ):
        assert flag in ti_w4_eq6


def test_emit_tpu_runs_the_launcher_with_the_overrides_after_the_separator(capsys):
    where = ["--tpu-name", "pod-1", "--zone", "us-east5-a", "--accelerator-type", "v5p-32"]
    lines = emitted(
        capsys, "--workdir", "gs://b/sweep", "--data", "gs://b/data", "--only", "s_w2_eq5",
        "--emit-launch", "tpu", *where, "--launch-arg=--spot",
    )  # fmt: skip
    assert len(lines) == 1
    sep = lines[0].index("--")
    launcher, overrides = lines[0][:sep], lines[0][sep + 1 :]
    assert launcher == [
        "python", "scripts/launch_tpu.py", "--name", "pod-1", "--zone", "us-east5-a",
        "--accelerator-type", "v5p-32", "--config", "experiments/configs/paper.py:stage=sav,model=s",
        "--workdir", "gs://b/sweep/s_w2_eq5/train", "--spot",
    ]  # fmt: skip
    assert "--config.model.name=efficienttam_s" in overrides
    assert "--config.data.sources.sav.path=gs://b/data/sav" in overrides
    assert all(flag.startswith("--config.") for flag in overrides)
    # The launcher's own parser reads the line as meant.
    opts, _ = import_file(ROOT / "scripts" / "launch_tpu.py", "parse_args").parse_args(lines[0][2:])
    assert (opts.name, opts.accelerator_type, opts.spot) == ("pod-1", "v5p-32", True)
    assert (
        opts.config == "experiments/configs/paper.py:stage=sav,model=s"
        and opts.train_args == tuple(overrides)
    )


def test_emit_tpu_without_a_slice_is_an_error(capsys, tmp_path):
    argv = ["sweep", str(SWEEP_FILE), "--workdir", str(tmp_path), "--data", "/d"]
    assert cli.main([*argv, "--emit-launch", "tpu", "--tpu-name", "x"]) == 1
    assert "--zone, --accelerator-type" in capsys.readouterr().err


def test_a_rerun_with_every_point_finished_only_writes_the_tables(tmp_path):
    for row in (ROWS[0], ROWS[1]):  # the two points of the ci variant
        write_json(tmp_path / row["point"] / "result.json", row)
    assert cli.main(["sweep", str(SWEEP_FILE), "--workdir", str(tmp_path), "--variant", "ci"]) == 0
    lines = (tmp_path / "results.md").read_text().splitlines()
    assert [line.split(" | ")[0] for line in lines[2:]] == ["| ti_w1_none", "| ti_w2_eq5"]
    assert (tmp_path / "results.csv").is_file() and (tmp_path / "results.png").stat().st_size > 0
    nothing_ran = ["result.json"]
    assert sorted(p.name for p in (tmp_path / "ti_w1_none").iterdir()) == nothing_ran
