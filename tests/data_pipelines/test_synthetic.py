"""Synthetic data: real layouts and fields, masks that cover the drawn objects, determinism."""

from __future__ import annotations

import filecmp
import json
import math
import tarfile
import time
from pathlib import Path

import numpy as np
import pycocotools.mask as mask_utils
from PIL import Image, ImageDraw

from data_pipelines import synthetic
from data_pipelines.records import decode_jpeg
from data_pipelines.synthetic_scene import SceneStyle
from tests.data_pipelines.synthetic_data import SEED, synth_root  # noqa: F401

SAV_KEYS = {
    "video_id",
    "video_duration",
    "video_frame_count",
    "video_height",
    "video_width",
    "video_resolution",
    "video_environment",
    "video_split",
    "masklet",
    "masklet_id",
    "masklet_size_rel",
    "masklet_size_abs",
    "masklet_size_bucket",
    "masklet_visibility_changes",
    "masklet_first_appeared_frame",
    "masklet_frame_count",
    "masklet_edited_frame_count",
    "masklet_type",
    "masklet_stability_score",
    "masklet_num",
}


def _files(root: Path) -> list[Path]:
    return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file())


def test_same_seed_same_bytes_other_seed_differs(tmp_path: Path, synth_root: Path) -> None:
    start = time.perf_counter()
    synthetic.write_all(tmp_path / "a", seed=SEED)
    assert time.perf_counter() - start < 20
    files = _files(synth_root)
    assert files == _files(tmp_path / "a")
    _, mismatch, errors = filecmp.cmpfiles(
        synth_root, tmp_path / "a", [str(f) for f in files], shallow=False
    )
    assert not mismatch and not errors
    synthetic.write_sa1b(tmp_path / "b", seed=SEED + 1)
    assert not filecmp.cmp(
        synth_root / "sa1b" / "sa_000000.tar", tmp_path / "b" / "sa_000000.tar", shallow=False
    )


def _assert_mask_covers_object(image: np.ndarray, mask: np.ndarray, scene, k: int) -> None:
    """Inside the mask the JPEG shows object k's texture, not the background."""
    pixels = image[mask].astype(float)
    err_object = np.abs(pixels - scene.texture(k, *np.nonzero(mask))).mean()
    err_background = np.abs(pixels - scene.background[mask]).mean()
    assert err_object < 25 and err_object < err_background / 2, (k, err_object, err_background)


def test_sa1b_shard_fields_and_masks(synth_root: Path) -> None:
    with tarfile.open(synth_root / "sa1b" / "sa_000000.tar") as tar:
        names = tar.getnames()
        assert names[:2] == ["sa_1.jpg", "sa_1.json"]
        meta = json.load(tar.extractfile("sa_1.json"))
        image = decode_jpeg(tar.extractfile("sa_1.jpg").read())
    assert meta["image"] == {"image_id": 1, "width": 256, "height": 192, "file_name": "sa_1.jpg"}
    assert image.shape == (192, 256, 3)
    scene = synthetic.scene_for("sa1b", SEED, 1, (192, 256), 5)
    for ann in meta["annotations"]:
        assert set(ann) == {
            "id",
            "segmentation",
            "bbox",
            "area",
            "predicted_iou",
            "stability_score",
            "crop_box",
            "point_coords",
        }
        mask = mask_utils.decode(ann["segmentation"]).astype(bool)
        assert mask.sum() == ann["area"] > 0
        assert mask_utils.toBbox(ann["segmentation"]).tolist() == ann["bbox"]
        x, y = np.floor(ann["point_coords"][0]).astype(int)
        assert mask[y, x]
        k = ann["id"] - 1000  # synthetic ids are image_id * 1000 + scene object index
        _assert_mask_covers_object(image, mask, scene, k)


def test_sav_json_fields(synth_root: Path) -> None:
    meta = json.loads((synth_root / "sav" / "sav_000001_manual.json").read_text())
    assert set(meta) == SAV_KEYS
    assert len(meta["masklet"]) == math.ceil(meta["video_frame_count"] / 4)
    assert all(
        len(frame) == meta["masklet_num"] == len(meta["masklet_id"]) for frame in meta["masklet"]
    )
    for k, first in enumerate(meta["masklet_first_appeared_frame"]):
        areas = [mask_utils.area(frame[k]) for frame in meta["masklet"]]
        assert first % 4 == 0 and areas[int(first) // 4] > 0 and not any(areas[: int(first) // 4])
    assert any(f > 0 for f in meta["masklet_first_appeared_frame"])  # a late object exists
    auto = json.loads((synth_root / "sav" / "sav_000001_auto.json").read_text())
    assert set(auto) == SAV_KEYS and set(auto["masklet_type"]) == {"auto"}
    assert not any(auto["masklet_first_appeared_frame"])


def test_davis_layout(synth_root: Path) -> None:
    root = synth_root / "davis"
    vids = (root / "ImageSets" / "2017" / "val.txt").read_text().split()
    assert vids == ["synth-001", "synth-002"]
    png = Image.open(root / "Annotations" / "480p" / vids[0] / "00000.png")
    assert png.mode == "P" and png.getpalette()[:6] == [0, 0, 0, 128, 0, 0]
    index = np.asarray(png)
    frames, masks, _, _ = synthetic.render_video(
        synthetic.scene_for("davis", SEED, 1, (128, 192), 3, 12), 12
    )
    expected = np.zeros(index.shape, np.uint8)
    for k in range(masks.shape[1]):
        expected[masks[0, k]] = k + 1
    np.testing.assert_array_equal(index, expected)
    assert len(list((root / "JPEGImages" / "480p" / vids[0]).glob("*.jpg"))) == 12


def test_sav_eval_layout(synth_root: Path) -> None:
    root = synth_root / "sav_eval"
    assert (root / "sav_val.txt").read_text().split() == ["sav_val_001", "sav_val_002"]
    assert len(list((root / "JPEGImages_24fps" / "sav_val_001").glob("*.jpg"))) == 24
    obj0 = sorted(p.name for p in (root / "Annotations_6fps" / "sav_val_001" / "000").glob("*.png"))
    assert obj0 == [f"{t:05d}.png" for t in range(0, 24, 4)]
    mask = np.asarray(Image.open(root / "Annotations_6fps" / "sav_val_001" / "000" / "00000.png"))
    assert set(np.unique(mask)) <= {0, 255} and mask.any()


def _davis_scenes(*styles: SceneStyle) -> list:
    """The same DAVIS scene (seed 3, video 0) in each style."""
    return [synthetic.scene_for("davis", 3, 0, (128, 192), 3, 12, style=s) for s in styles]


def test_object_scale_grows_the_same_objects(tmp_path: Path) -> None:
    """``object_scale`` multiplies each object's radii and keeps everything else of the seed."""
    base, big = _davis_scenes(SceneStyle(), SceneStyle(object_scale=1.6))
    for a, b in zip(base.objects, big.objects, strict=True):
        np.testing.assert_allclose(b.radii, 1.6 * a.radii, rtol=1e-12)
        np.testing.assert_array_equal(a.colors, b.colors)
    np.testing.assert_array_equal(base.background, big.background)
    # Every object's full polygon covers more pixels (the visible, occluded masks need not).
    drawn = [[Image.new("L", (192, 128)) for _ in range(3)] for _ in range(2)]
    for scene, canvases in zip((base, big), drawn, strict=True):
        for k, canvas in enumerate(canvases):
            ImageDraw.Draw(canvas).polygon([tuple(p) for p in scene.polygon(k, 0)], fill=1)
    areas = np.array([[np.asarray(c).sum() for c in canvases] for canvases in drawn])
    assert (areas[1] > 1.8 * areas[0]).all(), areas
    # The writers pass it through: the same DAVIS video with larger annotated objects.
    small_root, big_root = tmp_path / "s", tmp_path / "b"
    synthetic.write_all(small_root, ["davis"], seed=3, count=1)
    synthetic.write_all(big_root, ["davis"], seed=3, count=1, object_scale=1.6)
    first = sorted((small_root / "davis").rglob("*.png"))[0].relative_to(small_root)
    fg = [(np.asarray(Image.open(root / first)) > 0).sum() for root in (small_root, big_root)]
    assert fg[1] > 1.5 * fg[0], fg


def _centroids(masks: np.ndarray) -> np.ndarray:
    """``[T, K, 2]`` (x, y) centroid of every mask of a bool ``[T, K, H, W]`` stack."""
    ys, xs = np.indices(masks.shape[-2:])
    area = np.maximum(masks.sum((-2, -1)), 1)
    return np.stack([(masks * xs).sum((-2, -1)) / area, (masks * ys).sum((-2, -1)) / area], -1)


def test_motion_speeds_up_the_same_objects(tmp_path: Path) -> None:
    """``motion`` multiplies each object's velocity and keeps everything else of the seed,
    so the written videos move further from their first frame."""
    base, fast = _davis_scenes(SceneStyle(), SceneStyle(motion=3))
    for a, b in zip(base.objects, fast.objects, strict=True):
        np.testing.assert_allclose(b.velocity, 3 * a.velocity, rtol=1e-12)
        np.testing.assert_array_equal(a.radii, b.radii)
        np.testing.assert_array_equal(a.colors, b.colors)
    np.testing.assert_array_equal(base.render(0)[0], fast.render(0)[0])
    # Through the writers: frame 0 is the same, later frames move ~3x further
    # (until an object bounces off the frame's edge).
    roots = [tmp_path / "m1", tmp_path / "m3"]
    for root, m in zip(roots, (None, 3.0), strict=True):
        synthetic.write_all(root, ["davis", "sav"], seed=3, count=1, motion=m)
    ann = sorted((roots[0] / "davis").rglob("Annotations/480p/*/*.png"))
    index = [
        np.stack([np.asarray(Image.open(root / p.relative_to(roots[0]))) for p in ann])
        for root in roots
    ]
    np.testing.assert_array_equal(index[0][0], index[1][0])
    masks = [i[:, None] == np.unique(i[0])[1:, None, None] for i in index]
    step = [np.linalg.norm(_centroids(m)[1] - _centroids(m)[0], axis=-1) for m in masks]
    assert (step[1] > 2 * step[0]).all(), step
    sav = [sorted((r / "sav").glob("*.mp4"))[0].read_bytes() for r in roots]
    assert sav[0] != sav[1]  # SA-V videos get it too
