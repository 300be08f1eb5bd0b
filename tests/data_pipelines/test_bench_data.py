"""`etam bench data` runs end to end on tiny synthetic records and writes its JSON."""

import json

from data_pipelines import bench
from etam_jax.bench.command import main as bench_command


def test_bench_data_writes_json_and_table(tmp_path, capsys):
    out = tmp_path / "data.json"
    rc = bench_command(
        [
            "data",
            "--workers",
            "0",
            "--frame-size",
            "48x64",
            "--record-frames",
            "3",
            "--num-frames",
            "2",
            "--resolution",
            "32",
            "--examples",
            "4",
            "--records",
            "2",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    report = json.loads(out.read_text())
    modes = [(r["mode"], r["workers"]) for r in report["results"]]
    assert modes == [("decode", 0), ("full", 0)]
    for r in report["results"]:
        assert r["examples"] == 4 and r["examples_per_s"] > 0 and r["peak_rss_mib"] > 0
    assert set(report["full_vs_decode_per_cpu_s"]) == {"0"} and report["backend"] == "cpu"
    printed = capsys.readouterr().out
    assert "examples_per_cpu_s" in printed and str(out) in printed


def test_scene_record_is_decodable():
    from data_pipelines.records import check_record, decode_record

    rec = bench.scene_record(3, 40, 56, 2, 3)
    check_record(rec)
    d = decode_record(rec)
    assert d["frames"].shape == (2, 40, 56, 3) and d["masks"].shape[:2] == (
        2,
        len(rec["object_ids"]),
    )
