"""`etam bench memory-attention`: FLOPs equal XLA's direct count, the key buffer counted by
hand (padding once w*w exceeds the slots), and ours beside the official module (same output)."""

import json

import pytest

from etam_jax.bench.memory_attention import point_config
from etam_jax.cli import main as etam
from etam_jax.sweep.cost import xla_flops

SIZE, GRID, SLOTS = 128, 8, 7


def run(tmp_path, *args):
    out = tmp_path / "ma.json"
    argv = ["bench", "memory-attention", "--image-size", str(SIZE), *args, "--out", str(out)]
    assert etam(argv) == 0
    report = json.loads(out.read_text())
    assert report["command"] == ["etam", *argv] and report["jax_backend"] == "cpu"
    return report["results"]


def test_flops_and_key_buffer_by_pooling(tmp_path, capsys):
    pools = ("1:none", "2:eq5", "4:eq6")
    rows = run(tmp_path, "--repeats", "0", *(a for p in pools for a in ("--pool", p)))
    n = GRID * GRID
    assert [(r["pool_window"], r["pool_correction"]) for r in rows] == [
        (1, "none"),
        (2, "eq5"),
        (4, "eq6"),
    ]
    want_buffer = {1: SLOTS * n, 2: SLOTS * n // 4, 4: n}  # 7 * 64 / 16 = 28 < 64: padded
    for r in rows:
        assert (r["grid"], r["slots"], r["ptr_tokens"]) == (GRID, SLOTS, 64)
        assert r["key_buffer"] == want_buffer[r["pool_window"]]
        assert r["padding_keys"] == r["key_buffer"] - SLOTS * n // r["pool_window"] ** 2
        cfg = point_config("efficienttam_ti", SIZE, (r["pool_window"], r["pool_correction"]))
        assert r["gflops"] == pytest.approx(xla_flops(cfg, GRID) / 1e9, rel=1e-9)
        assert "ours_ms" not in r
    assert rows[0]["gflops"] > rows[1]["gflops"] > rows[2]["gflops"]
    assert (rows[0]["padding_keys"], rows[1]["padding_keys"], rows[2]["padding_keys"]) == (
        0,
        0,
        n - SLOTS * n // 16,
    )
    assert "wrote" in capsys.readouterr().out


def test_ours_beside_the_official_module(tmp_path):
    rows = run(
        tmp_path,
        "--model",
        "efficienttam_ti_1",
        "--pool",
        "2:eq5",
        "--pool",
        "4:eq5",
        "--repeats",
        "1",
        "--official",
    )
    same, other = rows
    assert same["official"] == "efficienttam_ti_1" and same["rel_err"] < 1e-4
    assert same["ours_ms"] > 0 and same["official_ms"] > 0 and same["compile_s"] > 0
    assert same["official_over_ours"] == pytest.approx(same["official_ms"] / same["ours_ms"])
    assert other["official"].startswith("no official config") and other["ours_ms"] > 0


@pytest.mark.parametrize(
    "args,match",
    [
        (["--pool", "2:eq7"], "--pool '2:eq7'"),
        (["--pool", "0"], "--pool '0'"),
        (["--pool", "3"], "expected a divisor of the feature grid 8, found 3"),
        (["--repeats", "-1"], "--repeats -1"),
    ],
)
def test_bad_flags_are_named(capsys, args, match):
    assert etam(["bench", "memory-attention", "--image-size", str(SIZE), *args]) != 0
    assert match in capsys.readouterr().err
