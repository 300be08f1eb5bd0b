"""SA-V jsons whose counts contradict their masklet or video are skipped, counted and named.

One tiny generated video per inconsistency (9 frames of 32x48: annotated frames
0, 4, 8) with its ``_manual.json`` corrupted in one field, beside valid videos;
read raw, through the Grain pipeline, and through ``etam data prepare sav``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import grain
import numpy as np
import pytest

from data_pipelines import synthetic
from data_pipelines.clip_sampling import SamplingSpec
from data_pipelines.pipeline import PipelineSpec, SourceSpec, mixed_batches, training_batches
from data_pipelines.prepare import REPORT, prepare
from data_pipelines.prepared import PreparedSource
from data_pipelines.records import SkippedExample, check_record, decode_record
from data_pipelines.sav_reader import PER_MASKLET_FIELDS, SAVSource
from data_pipelines.transforms import AugmentSpec
from etam_jax.errors import EtamError
from tests.data_pipelines.synthetic_data import SEED, edit_json

NUM_FRAMES, SIZE, NUM_OBJECTS = 9, (32, 48), 2  # ceil(9 / 4) = 3 annotated frames
NUM_VALID = 2
Edit = Callable[[dict], object]


def _set(field: str, index: int | None, value: object) -> Edit:
    """An edit setting ``meta[field]`` (or its entry ``index``) to ``value``."""
    if index is None:
        return lambda meta: meta.__setitem__(field, value)
    return lambda meta: meta[field].__setitem__(index, value)


# (field, entry or None, a wrong value, what the 9-frame 32x48 video / 2 masklets allow)
WRONG_COUNTS = [
    ("video_frame_count", None, 12.0, "9"),
    ("video_height", None, 64.0, "32"),
    ("video_width", None, 24.0, "48"),
    ("video_resolution", None, 1.0, "1536"),
    ("masklet_num", None, 3, "2"),
    ("masklet_first_appeared_frame", 1, 12.0, "0..8"),
    ("masklet_frame_count", 0, 4, "0..3"),
    ("masklet_edited_frame_count", 1, 5, "0..3"),
    ("masklet_visibility_changes", 0, 3, "0..2"),
]
# name -> (corruption of a valid json, how the reason starts)
CASES: dict[str, tuple[Edit, str]] = {
    "masklet shorter than video": (
        lambda m: m["masklet"].pop(),
        "len(masklet): found 2, expected 3",
    ),
    "masklet longer than video": (
        lambda m: m["masklet"].append(m["masklet"][0]),
        "len(masklet): found 4, expected 3",
    ),
    "masklet_id longer than masks": (
        lambda m: m["masklet_id"].append(7),
        "len(masklet[0]): found 2, expected 3",
    ),
    "masks missing on a frame": (
        lambda m: m["masklet"][1].pop(),
        "len(masklet[1]): found 1, expected 2",
    ),
    "repeated masklet_id": (
        _set("masklet_id", None, [0, 0]),
        "distinct masklet_id: found 1, expected 2",
    ),
    **{
        f"len({field})": (lambda m, f=field: m[f].pop(), f"len({field}): found 1, expected 2")
        for field in PER_MASKLET_FIELDS
    },
    **{
        field: (
            _set(field, index, value),
            f"{field}{'' if index is None else f'[{index}]'}: found {value}, expected {allowed}",
        )
        for field, index, value, allowed in WRONG_COUNTS
    },
    "masklet_stability_score": (
        _set("masklet_stability_score", None, [[0.9, 0.95], None]),
        "len(masklet_stability_score[0]): found 2, expected 3",
    ),
    "RLE size": (
        lambda m: m["masklet"][2].__setitem__(0, synthetic.rle_dict(np.ones((16, 48), bool))),
        "masklet[2][0].size (frame 8): found [16, 48], expected [32, 48]",
    ),
}
NAMES = list(CASES)


def _manual_json(root: Path, case: int) -> Path:
    """The json corrupted for case ``case``: video ``case + 1`` (the last `NUM_VALID` are valid)."""
    return root / f"sav_{case + 1:06d}_manual.json"


@pytest.fixture(scope="module")
def corrupt_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One video per case, its manual json corrupted, then `NUM_VALID` untouched videos."""
    root = tmp_path_factory.mktemp("sav_json_checks")
    synthetic.write_sav(
        root,
        num_videos=len(CASES) + NUM_VALID,
        seed=SEED,
        size=SIZE,
        num_frames=NUM_FRAMES,
        num_objects=NUM_OBJECTS,
    )
    for case, (edit, _) in enumerate(CASES.values()):
        meta = json.loads(_manual_json(root, case).read_text())  # as CASES assume:
        assert len(meta["masklet"]) == 3 and len(meta["masklet_id"]) == NUM_OBJECTS
        edit_json(_manual_json(root, case), edit)
    return root


@pytest.fixture(scope="module")
def prepared(corrupt_root: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """(out folder, report) of ``etam data prepare sav`` of `corrupt_root`, checked in a worker."""
    out = tmp_path_factory.mktemp("prepared")
    return out, prepare("sav", corrupt_root, out, workers=1)


def test_generated_jsons_are_consistent(tmp_path: Path) -> None:
    """Every length the writer produces agrees with the checks, for N a multiple of 4 or not."""
    for num_frames in (1, 4, 8, 9, 11):
        root = tmp_path / str(num_frames)
        synthetic.write_sav(
            root, num_videos=1, seed=SEED, size=SIZE, num_frames=num_frames, num_objects=2
        )
        record = SAVSource(root, ("manual", "auto"))[0]
        check_record(record)
        np.testing.assert_array_equal(record["frame_indices"], np.arange(0, num_frames, 4))


@pytest.mark.parametrize("name", NAMES)
def test_reader_skips_inconsistent_json(name: str, corrupt_root: Path) -> None:
    case, expected = NAMES.index(name), CASES[name][1]
    with pytest.raises(SkippedExample) as info:
        decode_record(SAVSource(corrupt_root)[case])
    assert info.value.file == str(_manual_json(corrupt_root, case))
    assert info.value.reason.startswith(expected + " ("), info.value.reason


def test_reason_names_the_video(corrupt_root: Path) -> None:
    reason = SAVSource(corrupt_root)[0]["error"]
    assert reason == (
        "len(masklet): found 2, expected 3 "
        "(sav_000001.mp4: 9 frames of 32x48, 3 annotated, every 4th: ceil(9 / 4))"
    )


def test_inconsistent_auto_json_is_named(tmp_path: Path) -> None:
    """A bad ``_auto.json`` is named itself, and only matters when auto masklets are read."""
    synthetic.write_sav(tmp_path, num_videos=1, seed=SEED, size=SIZE, num_frames=NUM_FRAMES)
    edit_json(tmp_path / "sav_000001_auto.json", lambda m: m["masklet"].pop())
    with pytest.raises(SkippedExample) as info:
        check_record(SAVSource(tmp_path, ("manual", "auto"))[0])
    assert info.value.file == str(tmp_path / "sav_000001_auto.json")
    assert info.value.reason.startswith("len(masklet): found 2, expected 3 (")
    check_record(SAVSource(tmp_path)[0])


@pytest.mark.parametrize("name", NAMES)
def test_prepare_reports_inconsistent_json(name: str, corrupt_root: Path, prepared: tuple) -> None:
    case, expected = NAMES.index(name), CASES[name][1]
    [entry] = [
        e
        for e in prepared[1]["skipped_files"]
        if e["file"] == str(_manual_json(corrupt_root, case))
    ]
    assert entry["reason"].startswith(expected + " ("), entry["reason"]


def test_prepare_keeps_the_valid_videos(corrupt_root: Path, prepared: tuple) -> None:
    out, report = prepared
    assert report["skipped"] == len(report["skipped_files"]) == len(CASES)
    assert report["examples"] == NUM_VALID
    assert json.loads((out / REPORT).read_text())["skipped_files"] == report["skipped_files"]
    stored, raw = PreparedSource(out), SAVSource(corrupt_root)
    valid = range(len(CASES), len(CASES) + NUM_VALID)
    assert [stored[i]["id"] for i in range(len(stored))] == [raw[j]["id"] for j in valid]
    for i, j in enumerate(valid):
        a, b = decode_record(stored[i]), decode_record(raw[j])
        for key in ("frames", "masks", "frame_indices", "object_ids"):
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def _spec(**kw) -> PipelineSpec:
    return PipelineSpec(
        sources=(SourceSpec("sav", 1.0, 2, SamplingSpec(2, 2)),),
        augment=AugmentSpec(resolution=32),
        seed=SEED,
        **kw,
    )


def test_grain_pipeline_skips_and_counts(corrupt_root: Path) -> None:
    """One epoch draws every record once: each corrupt json is skipped, counted and named."""
    source = SAVSource(corrupt_root)
    batches = mixed_batches([source], _spec(), grain.sharding.NoSharding())
    named, counted = [], 0
    for i in range(len(source) // 2):
        batch = batches[i]
        named += [name for f in batch["skipped_files"] if f for name in f.decode().split("; ")]
        counted += int(batch["num_skipped"].sum())
        assert batch["obj_valid"].any(axis=1).all()  # every slot was filled by a valid video
    assert counted == len(named) >= len(CASES)
    assert set(named) == {str(_manual_json(corrupt_root, case)) for case in range(len(CASES))}
    with pytest.raises(EtamError, match=r"max_skipped_fraction=0.5.*sav_0000\d\d_manual.json"):
        it = iter(
            training_batches(
                [source],
                _spec(max_skipped_fraction=0.5, skip_check_after=1),
                grain.sharding.NoSharding(),
            )
        )
        next(it)
