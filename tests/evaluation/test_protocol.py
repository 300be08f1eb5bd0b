"""Which frames and objects each benchmark scores, the non-overlap rule, the written
files; predictions are given (no model), scores computed by hand."""

import csv
import json

import numpy as np
import pytest
from PIL import Image

from data_pipelines.synthetic import davis_palette, write_davis
from data_pipelines.vos_reader import read_davis, read_sav_eval
from etam_jax.evaluation.outputs import read_masks
from etam_jax.evaluation.vos_eval import evaluate_videos, masks_from_logits

H, W = 16, 20


def box(y0, x0, side=6):
    m = np.zeros((H, W), bool)
    m[y0 : y0 + side, x0 : x0 + side] = True
    return m


EMPTY = np.zeros((H, W), bool)


def write_jpegs(folder, num_frames):
    folder.mkdir(parents=True)
    for t in range(num_frames):
        Image.fromarray(np.full((H, W, 3), 40 * t % 256, np.uint8)).save(folder / f"{t:05d}.jpg")


def write_sav(root, gt):
    """gt: {obj: {frame: mask}} -> SA-V val layout with one video 'v'."""
    write_jpegs(root / "JPEGImages_24fps" / "v", 17)
    for o, frames in gt.items():
        (root / "Annotations_6fps" / "v" / f"{o:03d}").mkdir(parents=True)
        for t, m in frames.items():
            Image.fromarray(m.astype(np.uint8) * 255).save(
                root / "Annotations_6fps" / "v" / f"{o:03d}" / f"{t:05d}.png"
            )
    return read_sav_eval(root)


def write_davis_video(root, index_frames):
    write_jpegs(root / "JPEGImages" / "480p" / "v", len(index_frames))
    ann = root / "Annotations" / "480p" / "v"
    ann.mkdir(parents=True)
    for t, index in enumerate(index_frames):
        img = Image.fromarray(index.astype(np.uint8), mode="P")
        img.putpalette(davis_palette())
        img.save(ann / f"{t:05d}.png")
    return read_davis(root)


def given(predictions):
    """predict() returning fixed masks: {frame: {obj: mask}}."""
    return lambda video: ((t, predictions.get(t, {})) for t in range(len(video.frame_paths)))


def rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_non_overlap_keeps_the_largest_logit():
    logits = {1: np.array([[2.0, 5.0, -1.0, 3.0]]), 2: np.array([[3.0, 1.0, 4.0, 3.0]])}
    free = masks_from_logits(logits, non_overlap=False)
    np.testing.assert_array_equal(free[1], [[1, 1, 0, 1]])
    np.testing.assert_array_equal(free[2], [[1, 1, 1, 1]])
    fixed = masks_from_logits(logits, non_overlap=True)
    np.testing.assert_array_equal(fixed[1], [[0, 1, 0, 1]])  # a tie goes to the first object
    np.testing.assert_array_equal(fixed[2], [[1, 0, 1, 0]])
    single = masks_from_logits({7: np.array([[1.0, -1.0]])}, non_overlap=True)
    np.testing.assert_array_equal(single[7], [[1, 0]])


def test_sav_rules(tmp_path):
    """Object 0: scored frames 4, 8, 12 (not 0 and 16); frame 4 (both empty) is not
    scored; object 1 has ground truth only on its first and last frames: not reported."""
    gt = {
        0: {0: EMPTY, 4: EMPTY, 8: box(2, 2), 12: box(4, 6), 16: box(5, 5)},
        1: {0: box(8, 8), 4: EMPTY, 8: EMPTY, 12: box(1, 1)},
    }
    videos = write_sav(tmp_path / "data", gt)
    perfect_then_empty = {8: {0: box(2, 2), 1: box(0, 0)}, 12: {0: EMPTY}}
    s = evaluate_videos(videos, given(perfect_then_empty), tmp_path / "a", progress=False)
    assert (s["J"], s["F"], s["objects"], s["videos"]) == (0.5, 0.5, 1, 1)
    early_false_positive = {**perfect_then_empty, 4: {0: box(10, 10)}}
    s = evaluate_videos(videos, given(early_false_positive), tmp_path / "b", progress=False)
    assert s["J"] == pytest.approx(1 / 3) and s["F"] == pytest.approx(1 / 3)
    assert rows(tmp_path / "b" / "per_object.csv")[0]["frames"] == "3"
    # SA-V masks: one binary PNG per object and annotated frame
    written = read_masks(tmp_path / "b", videos[0], 4)
    np.testing.assert_array_equal(written[0], box(10, 10))
    np.testing.assert_array_equal(written[1], EMPTY)


def test_davis_rules(tmp_path):
    """Every frame but the first and last; both-empty frames score 1."""
    idx = [np.zeros((H, W), np.uint8) for _ in range(4)]
    idx[0][box(1, 1)], idx[0][box(8, 10)] = 1, 2
    idx[1][box(2, 2)], idx[1][box(8, 12)] = 1, 2
    idx[2][box(3, 3)] = 1  # object 2 gone
    idx[3][box(4, 4)] = 1
    videos = write_davis_video(tmp_path / "data", idx)
    preds = {1: {1: box(2, 2), 2: box(8, 12)}, 2: {1: box(3, 3), 2: EMPTY}, 3: {1: EMPTY}}
    s = evaluate_videos(videos, given(preds), tmp_path / "out", progress=False)
    assert (s["J&F"], s["objects"]) == (1.0, 2)
    per_obj = rows(tmp_path / "out" / "per_object.csv")
    assert [(r["object"], r["frames"]) for r in per_obj] == [("1", "2"), ("2", "2")]
    index = np.asarray(Image.open(tmp_path / "out" / "masks" / "v" / "00001.png"))
    np.testing.assert_array_equal(index, idx[1])
    assert (
        Image.open(tmp_path / "out" / "masks" / "v" / "00001.png").getpalette()[:6]
        == davis_palette()[:6]
    )


def test_global_means_are_over_objects(tmp_path):
    """Two videos, 3 and 1 objects: per-object means, not per-video means."""
    write_davis(tmp_path / "data", num_videos=2, size=(H * 2, W * 2), num_frames=4, num_objects=3)
    videos = read_davis(tmp_path / "data")
    first = videos[0]
    oracle = lambda v: (
        (t, v.masks(t) if v is not first else {}) for t in range(len(v.frame_paths))
    )
    s = evaluate_videos(videos, oracle, tmp_path / "out", progress=False, vis=1)
    n0, n1 = len(first.object_ids), len(videos[1].object_ids)
    per_object = [
        0.0 if r["video"] == first.name else 1.0 for r in rows(tmp_path / "out" / "per_object.csv")
    ]
    assert s["objects"] == n0 + n1 == len(per_object) and s["J"] == pytest.approx(
        np.mean(per_object)
    )
    assert json.loads((tmp_path / "out" / "summary.json").read_text()) == s
    video_rows = rows(tmp_path / "out" / "per_video.csv")
    assert [(r["video"], float(r["J&F"])) for r in video_rows] == [
        (first.name, 0.0),
        (videos[1].name, 1.0),
    ]
    vis = tmp_path / "out" / "vis"  # the worst video only
    assert sorted(p.name for p in vis.iterdir()) == [first.name, f"{first.name}.mp4"]
    assert len(list((vis / first.name).glob("*.png"))) == 4
