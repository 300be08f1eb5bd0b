"""`etam sweep` through the CLI: emitted launch commands, and tables from finished points."""

import shlex

from etam_jax import cli
from etam_jax.sweep.files import write_json
from tests.sweep.test_definition import SWEEP_FILE
from tests.sweep.test_results import ROWS


def emitted(capsys, *args):
    assert cli.main(["sweep", str(SWEEP_FILE), *args]) == 0
    return [shlex.split(line) for line in capsys.readouterr().out.splitlines()]


def test_emit_local_prints_one_train_command_per_point(capsys, tmp_path):
    lines = emitted(
        capsys,
        "--workdir",
        str(tmp_path),
        "--variant",
        "local",
        "--data",
        "/d",
        "--emit-launch",
        "local",
    )
    assert len(lines) == 7 and all(line[:2] == ["etam", "train"] for line in lines)
    ti_w4_eq6 = lines[-1]
    assert ti_w4_eq6[ti_w4_eq6.index("--workdir") + 1] == str(tmp_path / "ti_w4_eq6" / "train")
    assert "--config.model.memory_attention.pool_window=4" in ti_w4_eq6
    assert "--config.model.memory_attention.pool_correction=eq6" in ti_w4_eq6
    assert (
        "--config.model.image_size=256" in ti_w4_eq6
        and "--config.data.sources.sav.path=/d/sav" in ti_w4_eq6
    )


def test_emit_tpu_wraps_the_train_command_and_keeps_a_bucket_workdir(capsys):
    lines = emitted(
        capsys,
        "--workdir",
        "gs://b/sweep",
        "--data",
        "gs://b/data",
        "--only",
        "s_w2_eq5",
        "--emit-launch",
        "tpu",
        "--tpu-name",
        "pod-1",
    )
    assert len(lines) == 1
    launcher, train = lines[0][: lines[0].index("--")], lines[0][lines[0].index("--") + 1 :]
    assert launcher == ["python", "scripts/launch_tpu.py", "--tpu-name", "pod-1"]
    assert train[:2] == ["etam", "train"] and "gs://b/sweep/s_w2_eq5/train" in train
    assert "--config.model.name=efficienttam_s" in train


def test_emit_tpu_without_a_name_is_an_error(capsys, tmp_path):
    assert (
        cli.main(
            [
                "sweep",
                str(SWEEP_FILE),
                "--workdir",
                str(tmp_path),
                "--data",
                "/d",
                "--emit-launch",
                "tpu",
            ]
        )
        == 1
    )
    assert "--tpu-name" in capsys.readouterr().err


def test_a_rerun_with_every_point_finished_only_writes_the_tables(tmp_path):
    for row in (ROWS[0], ROWS[1]):  # the two points of the ci variant
        write_json(tmp_path / row["point"] / "result.json", row)
    assert cli.main(["sweep", str(SWEEP_FILE), "--workdir", str(tmp_path), "--variant", "ci"]) == 0
    lines = (tmp_path / "results.md").read_text().splitlines()
    assert [line.split(" | ")[0] for line in lines[2:]] == ["| ti_w1_none", "| ti_w2_eq5"]
    assert (tmp_path / "results.csv").is_file() and (tmp_path / "results.png").stat().st_size > 0
    nothing_ran = ["result.json"]
    assert sorted(p.name for p in (tmp_path / "ti_w1_none").iterdir()) == nothing_ran
