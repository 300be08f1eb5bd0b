"""Results tables and plot, from given rows."""

import csv
import json

import numpy as np
from PIL import Image

from etam_jax.sweep.definition import Point
from etam_jax.sweep.results import (
    COLUMNS,
    last_step,
    point_row,
    to_markdown,
    write_results,
)

ROWS = [
    {
        "point": "ti_w1_none",
        "model": "efficienttam_ti",
        "image_size": 1024,
        "window": 1,
        "correction": "none",
        "J&F": 71.25,
        "mem_attn_gflops": 612.5,
        "latency_ms": 40.0,
        "train_steps": 1000,
    },
    {
        "point": "ti_w2_eq5",
        "model": "efficienttam_ti",
        "image_size": 1024,
        "window": 2,
        "correction": "eq5",
        "J&F": 70.5,
        "mem_attn_gflops": 246.5,
        "latency_ms": 21.0,
        "train_steps": 1000,
    },
    {
        "point": "s_w4_eq6",
        "model": "efficienttam_s",
        "image_size": 1024,
        "window": 4,
        "correction": "eq6",
        "J&F": 73.0,
        "mem_attn_gflops": 180.25,
        "latency_ms": 18.5,
        "train_steps": None,
    },
]


def test_csv_markdown_and_png_hold_every_row(tmp_path):
    csv_path, md_path, png_path = write_results(ROWS, tmp_path)
    with open(csv_path) as f:
        got = list(csv.DictReader(f))
    assert [r["point"] for r in got] == [r["point"] for r in ROWS]
    assert (
        float(got[1]["J&F"]) == 70.5
        and float(got[0]["mem_attn_gflops"]) == 612.5
        and got[2]["train_steps"] == ""
    )
    lines = md_path.read_text().splitlines()
    assert lines[0] == "| " + " | ".join(COLUMNS) + " |" and len(lines) == 2 + len(ROWS)
    assert "| ti_w2_eq5 | efficienttam_ti | 1024 | 2 | eq5 | 70.5 | 246.5 | 21 | 1000 |" in lines
    image = np.asarray(Image.open(png_path).convert("L"))
    # Something drawn on white.
    assert image.shape[0] > 300 and image.shape[1] > 800 and image.min() < 100


def test_markdown_of_no_rows_is_the_header():
    assert len(to_markdown([]).splitlines()) == 2


def test_point_row_reads_eval_bench_and_last_logged_step(tmp_path):
    metrics = tmp_path / "metrics.jsonl"
    records = [{"step": 10, "loss": 1.0}, {"step": 20, "val_J&F": 50.0}, {"step": 15, "loss": 0.5}]
    metrics.write_text("".join(json.dumps(r) + "\n" for r in records))
    point = Point("ti_w2_eq5", "demo.py", "efficienttam_ti", 128, 2, "eq5", {})
    row = point_row(
        point, {"J&F": 61.5, "J": 60.0}, {"mem_attn_flops": 2.5e9, "latency_ms": 3.0}, metrics
    )
    assert row == {
        "point": "ti_w2_eq5",
        "model": "efficienttam_ti",
        "image_size": 128,
        "window": 2,
        "correction": "eq5",
        "J&F": 61.5,
        "mem_attn_gflops": 2.5,
        "latency_ms": 3.0,
        "train_steps": 20,
    }
    assert last_step(tmp_path / "missing.jsonl") is None
