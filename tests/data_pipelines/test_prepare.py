"""prepare -> ArrayRecord -> read back gives exactly the raw readers' examples; bad files reported."""

from __future__ import annotations

import json
import pickle
import shutil
import sys
from pathlib import Path

import grain
import numpy as np
import pytest

from data_pipelines.prepare import prepare
from data_pipelines.prepared import PreparedSource
from data_pipelines.records import decode_record
from data_pipelines.sa1b_reader import SA1BSource
from data_pipelines.sav_reader import SAVSource
from data_pipelines.sources import open_source
from etam_jax.errors import EtamError
from tests.data_pipelines.synthetic_data import synth_root  # noqa: F401


def _assert_same_examples(prepared, raw, raw_indices) -> None:
    assert len(prepared) == len(raw_indices)
    for i, j in enumerate(raw_indices):
        a, b = decode_record(prepared[i]), decode_record(raw[j])
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
        raw_record, stored = raw[j], prepared[i]
        assert all(x == y for x, y in zip(raw_record["frames"], stored["frames"]))


@pytest.mark.parametrize("kind, reader", [("sa1b", SA1BSource), ("sav", SAVSource)])
def test_prepared_equals_raw(kind: str, reader, synth_root: Path, tmp_path: Path) -> None:
    report = prepare(kind, synth_root / kind, tmp_path, check_masks=True)
    raw = reader(synth_root / kind)
    assert report["examples"] == len(raw) and report["skipped"] == 0
    assert json.loads((tmp_path / "prepare_report.json").read_text())["examples"] == len(raw)
    prepared = PreparedSource(tmp_path)
    _assert_same_examples(prepared, raw, range(len(raw)))
    restored = pickle.loads(pickle.dumps(prepared))  # grain workers receive sources pickled
    assert grain.MapDataset.source(restored)[0]["id"] == raw[0]["id"]
    assert isinstance(open_source(tmp_path), PreparedSource)
    assert "tensorflow" not in sys.modules


def test_prepare_skips_and_reports_bad_files(synth_root: Path, tmp_path: Path) -> None:
    shutil.copytree(synth_root / "sav", tmp_path / "sav")
    video = tmp_path / "sav" / "sav_000001.mp4"
    video.write_bytes(video.read_bytes()[:5000])
    report = prepare(
        "sav", tmp_path / "sav", tmp_path / "out", workers=1
    )  # checked in a Grain worker
    assert report["examples"] == 1 and report["skipped"] == 1
    assert report["skipped_files"][0]["file"] == str(video)
    _assert_same_examples(PreparedSource(tmp_path / "out"), SAVSource(tmp_path / "sav"), [1])
    with pytest.raises(EtamError, match="already exists"):
        prepare("sav", tmp_path / "sav", tmp_path / "out")
