"""Readers against hand-written files and synthetic data (RLE through pycocotools, mp4 through PyAV)."""

from __future__ import annotations

import io
import json
import pickle
import tarfile
from fractions import Fraction
from pathlib import Path

import av
import grain
import numpy as np
import pycocotools.mask as mask_utils
from PIL import Image

from data_pipelines import synthetic
from data_pipelines.records import decode_record
from data_pipelines.sa1b_reader import SA1BSource
from data_pipelines.sav_reader import AUTO_ID_OFFSET, SAVSource
from data_pipelines.video_io import read_mp4
from data_pipelines.vos_reader import read_vos
from tests.data_pipelines.synthetic_data import SEED, synth_root  # noqa: F401


def _rect(h: int, w: int, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    mask = np.zeros((h, w), bool)
    mask[y0:y1, x0:x1] = True
    return mask


def _coco_rle(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": rle["size"], "counts": rle["counts"].decode()}


def _jpeg(image: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=100)
    return buf.getvalue()


def test_sa1b_hand_written_tar(tmp_path: Path) -> None:
    h, w = 40, 60
    image = np.full((h, w, 3), 90, np.uint8)
    masks = [_rect(h, w, 5, 20, 10, 30), _rect(h, w, 25, 38, 40, 58)]
    image[masks[0]] = (200, 30, 30)
    meta = {
        "image": {"image_id": 42, "width": w, "height": h, "file_name": "sa_42.jpg"},
        "annotations": [
            {
                "id": 7 + i,
                "segmentation": _coco_rle(m),
                "bbox": [0, 0, 1, 1],
                "area": int(m.sum()),
                "predicted_iou": 0.9,
                "stability_score": 0.9,
                "crop_box": [0, 0, w, h],
                "point_coords": [[1.0, 1.0]],
            }
            for i, m in enumerate(masks)
        ],
    }
    with tarfile.open(tmp_path / "sa_000000.tar", "w") as tar:
        for name, data in [("sa_42.jpg", _jpeg(image)), ("sa_42.json", json.dumps(meta).encode())]:
            info = tarfile.TarInfo("./" + name)  # real shards use ./ prefixes
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    source = SA1BSource(tmp_path)
    assert len(source) == 1
    example = decode_record(source[0])
    assert example["id"] == "sa_42" and example["source"] == "sa1b"
    np.testing.assert_array_equal(example["masks"][0], np.stack(masks))
    np.testing.assert_array_equal(example["object_ids"], [7, 8])
    assert (
        np.abs(example["frames"][0].astype(float) - image).mean() < 2
    )  # JPEG; edges blur in chroma


def test_sa1b_tar_and_extracted_agree(synth_root: Path, tmp_path: Path) -> None:
    synthetic.write_sa1b(tmp_path, seed=SEED, tar=False)
    from_tar, extracted = SA1BSource(synth_root / "sa1b"), SA1BSource(tmp_path)
    assert len(from_tar) == len(extracted) == 6
    for i in range(len(from_tar)):
        a, b = from_tar[i], extracted[i]
        assert a["id"] == b["id"] == f"sa_{i + 1}"
        assert a["frames"][0] == b["frames"][0]
        np.testing.assert_array_equal(a["rle_counts"], b["rle_counts"])
    with tarfile.open(synth_root / "sa1b" / "sa_000000.tar") as tar:
        meta = json.load(tar.extractfile("sa_2.json"))
    example = decode_record(from_tar[1])
    expected = np.stack([mask_utils.decode(a["segmentation"]) for a in meta["annotations"]]).astype(
        bool
    )
    np.testing.assert_array_equal(example["masks"][0], expected)


def test_sources_in_grain_and_pickled(synth_root: Path) -> None:
    dataset = grain.MapDataset.source(SA1BSource(synth_root / "sa1b")).map(decode_record)
    assert len(dataset) == 6 and dataset[3]["id"] == "sa_4"
    sav = pickle.loads(pickle.dumps(SAVSource(synth_root / "sav")))  # as Grain sends it to workers
    assert grain.MapDataset.source(sav)[1]["id"] == "sav_000002"


def _write_gray_video(path: Path, values: list[int], h: int = 32, w: int = 48) -> None:
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=Fraction(24))
        stream.height, stream.width, stream.pix_fmt = h, w, "yuv420p"
        stream.options = {"qscale": "1"}
        for v in values:
            container.mux(
                stream.encode(
                    av.VideoFrame.from_ndarray(np.full((h, w, 3), v, np.uint8), format="rgb24")
                )
            )
        container.mux(stream.encode())


def test_sav_hand_written_video(tmp_path: Path) -> None:
    values = [10 * t for t in range(10)]  # frame t is uniformly grey 10*t
    _write_gray_video(tmp_path / "sav_000123.mp4", values)
    masks = [
        [_rect(32, 48, t, t + 8, 5, 20), _rect(32, 48, 0, 0, 0, 0)] for t in range(3)
    ]  # frames 0, 4, 8
    masks[2][1] = _rect(32, 48, 20, 30, 30, 40)  # object 5 appears on frame 8
    meta = {
        "video_id": "sav_000123",
        "video_frame_count": 10.0,
        "masklet_id": [3, 5],
        "masklet": [[_coco_rle(m) for m in frame] for frame in masks],
        "masklet_first_appeared_frame": [0.0, 8.0],
    }
    (tmp_path / "sav_000123_manual.json").write_text(json.dumps(meta))
    auto = dict(
        meta,
        masklet_id=[0],
        masklet=[[_coco_rle(frame[0])] for frame in masks],
        masklet_first_appeared_frame=[0.0],
    )
    (tmp_path / "sav_000123_auto.json").write_text(json.dumps(auto))
    example = decode_record(SAVSource(tmp_path, ("manual", "auto"))[0])
    np.testing.assert_array_equal(example["frame_indices"], [0, 4, 8])
    np.testing.assert_array_equal(example["object_ids"], [3, 5, AUTO_ID_OFFSET])
    for i, t in enumerate([0, 4, 8]):
        assert (
            np.abs(example["frames"][i].astype(int) - values[t]).max() <= 6
        )  # YUV + JPEG rounding
        np.testing.assert_array_equal(example["masks"][i], np.stack(masks[i] + [masks[i][0]]))
    frames, count = read_mp4(tmp_path / "sav_000123.mp4")
    assert count == len(frames) == 10


def test_sav_synthetic_video_matches_scene(synth_root: Path) -> None:
    rendered = synthetic.render_video(
        synthetic.scene_for("sav", SEED, 1, (128, 192), 3, 48, True), 48
    )
    frames, count = read_mp4(synth_root / "sav" / "sav_000001.mp4")
    assert count == 48
    assert (
        np.abs(np.stack(frames).astype(float) - rendered.frames).mean() < 4
    )  # H.264 4:2:0 at CRF 8
    example = decode_record(SAVSource(synth_root / "sav")[0])
    np.testing.assert_array_equal(example["frame_indices"], np.arange(0, 48, 4))
    np.testing.assert_array_equal(example["masks"], rendered.masks[::4])
    assert np.abs(example["frames"].astype(float) - rendered.frames[::4]).mean() < 5  # + JPEG q95


def test_vos_readers_match_scene(synth_root: Path) -> None:
    davis = read_vos(synth_root / "davis")
    rendered = synthetic.render_video(synthetic.scene_for("davis", SEED, 2, (128, 192), 3, 12), 12)
    video = davis[1]
    assert video.name == "synth-002" and len(video.frame_paths) == 12
    assert video.object_ids == tuple(range(1, rendered.masks.shape[1] + 1))
    for t in (0, 11):
        masks = video.masks(t)
        for k, obj in enumerate(video.object_ids):
            np.testing.assert_array_equal(masks[obj], rendered.masks[t, k])
    sav = read_vos(synth_root / "sav_eval")[0]
    rendered = synthetic.render_video(
        synthetic.scene_for("sav_eval", SEED, 1, (128, 192), 3, 24, True), 24
    )
    assert sav.annotated_frames == list(range(0, 24, 4))
    for k, obj in enumerate(sav.object_ids):
        assert sav.first_frame(obj) == rendered.first[k]
        np.testing.assert_array_equal(sav.mask(obj, 20), rendered.masks[20, k])
