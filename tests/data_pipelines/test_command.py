"""`etam data` smoke tests: exit codes, files, error messages."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from data_pipelines.command import main
from etam_jax.errors import EtamError
from tests.data_pipelines.synthetic_data import synth_root  # noqa: F401


def test_synth_through_etam_cli(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "etam_jax.cli",
            "data",
            "synth",
            "--out",
            str(tmp_path),
            "--kinds",
            "davis,sa1b",
            "--seed",
            "3",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["davis", "sa1b"]
    assert (tmp_path / "davis" / "ImageSets" / "2017" / "val.txt").exists()
    assert len(list((tmp_path / "sa1b").glob("sa_*.tar"))) == 2
    assert (
        main(
            [
                "synth",
                "--out",
                str(tmp_path / "small"),
                "--kinds",
                "sav_eval",
                "--size",
                "48x64",
                "--count",
                "1",
                "--num-frames",
                "8",
            ]
        )
        == 0
    )
    frames = sorted(
        (tmp_path / "small" / "sav_eval" / "JPEGImages_24fps" / "sav_val_001").glob("*.jpg")
    )
    assert len(frames) == 8 and Image.open(frames[0]).size == (64, 48)
    bad = subprocess.run(
        [
            sys.executable,
            "-m",
            "etam_jax.cli",
            "data",
            "synth",
            "--out",
            str(tmp_path),
            "--kinds",
            "coco",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 1 and "--kinds 'coco'" in bad.stderr
    with pytest.raises(EtamError, match="--object-scale 0.0"):
        main(["synth", "--out", str(tmp_path / "x"), "--kinds", "davis", "--object-scale", "0"])
    with pytest.raises(EtamError, match="--motion -1.0"):
        main(["synth", "--out", str(tmp_path / "x"), "--kinds", "davis", "--motion", "-1"])


def test_prepare_and_inspect_commands(synth_root: Path, tmp_path: Path, capsys) -> None:
    assert (
        main(
            ["prepare", "sa1b", "--source", str(synth_root / "sa1b"), "--out", str(tmp_path / "p")]
        )
        == 0
    )
    assert json.loads((tmp_path / "p" / "prepare_report.json").read_text())["examples"] == 6
    assert (
        main(["inspect", "--source", str(tmp_path / "p"), "--out", str(tmp_path / "i"), "-n", "2"])
        == 0
    )
    assert len(list((tmp_path / "i").glob("sa1b_sa_*.png"))) == 2
    assert (
        main(
            [
                "inspect",
                "--source",
                str(synth_root / "sav"),
                "--out",
                str(tmp_path / "j"),
                "-n",
                "1",
                "--pipeline",
                "--resolution",
                "64",
                "--num-frames",
                "4",
            ]
        )
        == 0
    )
    assert len(list((tmp_path / "j").glob("*.png"))) == 1


def test_prepare_fails_past_skip_limit(synth_root: Path, tmp_path: Path) -> None:
    shutil.copytree(synth_root / "sav", tmp_path / "sav")
    (tmp_path / "sav" / "sav_000002_manual.json").write_text("{}")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "etam_jax.cli",
            "data",
            "prepare",
            "sav",
            "--source",
            str(tmp_path / "sav"),
            "--out",
            str(tmp_path / "p"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1 and "1 of 2 examples skipped" in result.stderr
    report = json.loads((tmp_path / "p" / "prepare_report.json").read_text())
    assert report["skipped_files"][0]["file"].endswith("sav_000002_manual.json")
