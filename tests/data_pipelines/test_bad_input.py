"""Every kind of bad input is skipped with its file named, never raised as anything else."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from data_pipelines import synthetic
from data_pipelines.records import SkippedExample, check_record, decode_record, require_frames
from data_pipelines.sa1b_reader import SA1BSource
from data_pipelines.sav_reader import SAVSource
from tests.data_pipelines.synthetic_data import SEED, edit_json, synth_root  # noqa: F401


def _skip_reason(record: dict) -> SkippedExample:
    with pytest.raises(SkippedExample) as info:
        decode_record(record)
    return info.value


@pytest.fixture
def sa1b_dir(tmp_path: Path) -> Path:
    synthetic.write_sa1b(tmp_path, num_images=3, seed=SEED, size=(64, 96), num_objects=3, tar=False)
    return tmp_path


def test_sa1b_truncated_jpeg(sa1b_dir: Path) -> None:
    jpeg = (sa1b_dir / "sa_2.jpg").read_bytes()
    (sa1b_dir / "sa_2.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    source = SA1BSource(sa1b_dir)
    error = _skip_reason(source[1])
    assert "sa_2.json" in error.file and "JPEG" in error.reason
    decode_record(source[0]), decode_record(source[2])  # the others are untouched


def test_sa1b_json_missing_key(sa1b_dir: Path) -> None:
    edit_json(sa1b_dir / "sa_1.json", lambda m: m.pop("annotations"))
    error = _skip_reason(SA1BSource(sa1b_dir)[0])
    assert error.file.endswith("sa_1.json") and "annotations" in error.reason


def test_sa1b_rle_size_disagrees(sa1b_dir: Path) -> None:
    def shrink(meta: dict) -> None:
        meta["annotations"][0]["segmentation"]["size"] = [32, 48]

    edit_json(sa1b_dir / "sa_3.json", shrink)
    error = _skip_reason(SA1BSource(sa1b_dir)[2])
    assert error.file.endswith("sa_3.json") and "[32, 48] != image size [64, 96]" in error.reason


def test_sa1b_image_size_disagrees_with_json(sa1b_dir: Path) -> None:
    def lie(meta: dict) -> None:  # json and RLEs agree with each other, not with the JPEG
        meta["image"]["height"] = 32
        for ann in meta["annotations"]:
            ann["segmentation"] = synthetic.rle_dict(np.ones((32, 96), bool))

    edit_json(sa1b_dir / "sa_1.json", lie)
    assert (
        "image size [64, 96] != annotated size [32, 96]"
        in _skip_reason(SA1BSource(sa1b_dir)[0]).reason
    )


def test_sa1b_object_with_no_pixels(sa1b_dir: Path) -> None:
    def empty(meta: dict) -> None:
        meta["annotations"][1]["segmentation"] = synthetic.rle_dict(np.zeros((64, 96), bool))

    edit_json(sa1b_dir / "sa_2.json", empty)
    assert "has no pixels" in _skip_reason(SA1BSource(sa1b_dir)[1]).reason


@pytest.fixture
def sav_dir(synth_root: Path, tmp_path: Path) -> Path:
    shutil.copytree(synth_root / "sav", tmp_path / "sav")
    return tmp_path / "sav"


def test_sav_truncated_mp4(sav_dir: Path) -> None:
    video = sav_dir / "sav_000001.mp4"
    data = video.read_bytes()
    video.write_bytes(data[: int(len(data) * 0.6)])
    error = _skip_reason(SAVSource(sav_dir)[0])
    assert error.file.endswith("sav_000001.mp4") and "decode" in error.reason
    decode_record(SAVSource(sav_dir)[1])


def test_sav_json_missing_key_and_missing_json(sav_dir: Path) -> None:
    edit_json(sav_dir / "sav_000001_manual.json", lambda m: m.pop("masklet_id"))
    error = _skip_reason(SAVSource(sav_dir)[0])
    assert error.file.endswith("sav_000001_manual.json") and "masklet_id" in error.reason
    (sav_dir / "sav_000002_manual.json").unlink()
    assert "sav_000002_manual.json" in _skip_reason(SAVSource(sav_dir)[1]).reason


def test_sav_masklet_longer_than_video(sav_dir: Path) -> None:
    # The mp4 decodes to its end (48 frames), so the json is at fault. Every other field the
    # reader checks: test_sav_json_checks.py.
    edit_json(sav_dir / "sav_000001_manual.json", lambda m: m["masklet"].extend(m["masklet"][:3]))
    error = _skip_reason(SAVSource(sav_dir)[0])
    assert error.file.endswith("sav_000001_manual.json")
    assert error.reason.startswith("len(masklet): found 15, expected 12 (sav_000001.mp4: 48 frames")


def test_sav_rle_size_disagrees(sav_dir: Path) -> None:
    def shrink(meta: dict) -> None:
        meta["masklet"][2][0] = synthetic.rle_dict(np.ones((64, 96), bool))

    edit_json(sav_dir / "sav_000002_manual.json", shrink)
    error = _skip_reason(SAVSource(sav_dir)[1])
    assert error.file.endswith("sav_000002_manual.json")
    assert "masklet[2][0].size (frame 8): found [64, 96], expected [128, 192]" in error.reason


def test_video_shorter_than_clip(synth_root: Path) -> None:
    record = SAVSource(synth_root / "sav")[0]  # 12 annotated frames
    require_frames(record, 12)
    check_record(record, min_frames=12)
    with pytest.raises(SkippedExample, match="12 annotated frames, clip needs 16"):
        require_frames(record, 16)
    with pytest.raises(SkippedExample):
        check_record(record, min_frames=16)


def test_sa1b_corrupt_rle_string(sa1b_dir: Path) -> None:
    def garble(meta: dict) -> None:
        meta["annotations"][0]["segmentation"]["counts"] += (
            "o"  # a last group that says "more follow"
        )

    edit_json(sa1b_dir / "sa_1.json", garble)
    error = _skip_reason(SA1BSource(sa1b_dir)[0])
    assert error.file.endswith("sa_1.json") and "RLE" in error.reason


def test_sa1b_rle_shorter_than_image(sa1b_dir: Path) -> None:
    def short(meta: dict) -> None:  # a valid 10x10 RLE under an image-sized "size"
        meta["annotations"][1]["segmentation"]["counts"] = synthetic.rle_dict(
            np.ones((10, 10), bool)
        )["counts"]

    edit_json(sa1b_dir / "sa_2.json", short)
    error = _skip_reason(SA1BSource(sa1b_dir)[1])
    assert "covers 100 pixels, image has 64x96 = 6144" in error.reason
