"""`etam bench track` on tiny generated videos: report layout, official side by side."""

import json

import numpy as np

from etam_jax.cli import main as etam


def test_bench_track_json(tmp_path, capsys):
    out = tmp_path / "b.json"
    argv = [
        "bench",
        "track",
        "--model",
        "efficienttam_ti",
        "--image-size",
        "64",
        "--short",
        "3",
        "--long-factor",
        "2",
        "--size",
        "40x56",
        "--official",
        "short",
        "--out",
        str(out),
    ]
    assert etam(argv) == 0
    report = json.loads(out.read_text())
    assert report["command"] == ["etam"] + argv
    assert report["jax_backend"] == "cpu" and report["device_kind"]
    short, long = report["results"]
    assert (short["video"], short["num_frames"], long["video"], long["num_frames"]) == (
        "short",
        3,
        "long",
        6,
    )
    for row in (short, long):
        ours = row["ours"]
        assert row["objects"] == 3 and ours["frames"] == row["num_frames"]
        assert ours["ms_per_frame"] > 0 and abs(ours["fps"] * ours["ms_per_frame"] - 1000) < 1e-6
        assert ours["rss_peak_mb"] >= ours["rss_end_mb"] > 0
        assert np.isfinite(ours["rss_slope_mb_per_frame"])
    assert short["ours"]["compile_s"] > 0
    assert long["ours"]["compile_s"] < short["ours"]["compile_s"]  # the predictor is reused
    off = short["official"]
    assert off["frames"] == 3 and off["ms_per_frame"] > 0
    assert short["speedup_vs_official"] == off["ms_per_frame"] / short["ours"]["ms_per_frame"]
    assert "official" not in long
    printed = capsys.readouterr().out
    assert "official/ours" in printed and str(out) in printed
