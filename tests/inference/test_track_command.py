"""`etam track`: output layout, atomic output folder, and every kind of bad input."""

import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from etam_jax.cli import main as etam
from etam_jax.convert.checkpoint_io import write_pt
from etam_jax.convert.naming import to_torch_arrays
from etam_jax.inference.demo_video import write_demo_video
from etam_jax.models.build import build_model

MODEL, SIZE, NUM_FRAMES, HW = "efficienttam_ti", 128, 4, (72, 96)


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    root = tmp_path_factory.mktemp("track")
    frames_dir, prompts = write_demo_video(str(root), NUM_FRAMES, size=HW, seed=5)
    ckpt = str(root / "w.pt")
    write_pt(to_torch_arrays(build_model(MODEL, image_size=SIZE)), ckpt)
    return root, frames_dir, prompts, ckpt


def track(case, out, *extra, frames=None, prompts=None, model=MODEL):
    root, frames_dir, prompts_path, ckpt = case
    argv = [
        "track",
        "--model",
        model,
        "--checkpoint",
        ckpt,
        "--frames",
        frames or frames_dir,
        "--prompts",
        prompts or prompts_path,
        "--out",
        str(out),
        "--image-size",
        str(SIZE),
    ]
    return etam(argv + list(extra))


def write_prompts(folder, entries):
    path = folder / "p.json"
    path.write_text(json.dumps(entries))
    return str(path)


def test_writes_masks_and_logits(case, tmp_path):
    root, _, prompts_path, _ = case
    entries = json.load(open(prompts_path))
    entries.append({"frame": 2, "obj_id": 9, "points": [[10, 10]], "labels": [1]})
    prompts = str(root / "with_late.json")
    open(prompts, "w").write(json.dumps(entries))
    out = tmp_path / "out"
    assert track(case, out, "--save-logits", "--reverse", prompts=prompts) == 0
    first = {e["obj_id"]: e["frame"] for e in entries}
    assert sorted(os.listdir(out)) == sorted(str(o) for o in first)
    for obj_id in first:  # --reverse: every frame, also before the first prompt
        names = sorted(os.listdir(out / str(obj_id)))
        stems = [f"{t:05d}" for t in range(NUM_FRAMES)]
        assert names == sorted([s + ".npy" for s in stems] + [s + ".png" for s in stems])
        for s in stems:
            mask = np.asarray(Image.open(out / str(obj_id) / f"{s}.png"))
            logits = np.load(out / str(obj_id) / f"{s}.npy")
            assert logits.dtype == np.float32 and logits.shape == mask.shape == HW
            np.testing.assert_array_equal(mask, np.where(logits > 0, 255, 0))
    assert not [p for p in os.listdir(tmp_path) if "partial" in p]


def bad(case, tmp_path, capsys, match, **kw):
    out = tmp_path / "out"
    assert track(case, out, **kw) != 0
    err = capsys.readouterr().err.strip().splitlines()[-1]  # after the progress bar
    assert err.startswith("etam track: error: ") and match in err, err
    assert not out.exists() and not [p for p in os.listdir(tmp_path) if "partial" in p]


def test_unknown_model(case, tmp_path, capsys):
    bad(case, tmp_path, capsys, "unknown model 'efficienttam_xl'", model="efficienttam_xl")


def test_missing_and_empty_frames(case, tmp_path, capsys):
    bad(case, tmp_path, capsys, "nope: frames folder not found", frames=str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    bad(case, tmp_path, capsys, "empty: no JPEG frames", frames=str(tmp_path / "empty"))


def test_unreadable_jpeg(case, tmp_path, capsys):
    frames = tmp_path / "frames"
    shutil.copytree(case[1], frames)
    data = (frames / "00003.jpg").read_bytes()
    (frames / "00003.jpg").write_bytes(data[: len(data) // 2])  # header fine, pixels cut off
    bad(case, tmp_path, capsys, "00003.jpg: cannot read JPEG frame", frames=str(frames))


@pytest.mark.parametrize(
    "entry,match",
    [
        ({"frame": 7, "obj_id": 1, "box": [1, 1, 5, 5]}, "frame 7 does not exist"),
        (
            {"frame": 0, "obj_id": 1, "box": [1, 1, 500, 5]},
            "box corner (500, 5) is outside the image",
        ),
        ({"frame": 0, "obj_id": 1, "points": [[-3, 1]], "labels": [1]}, "point (-3, 1) is outside"),
        ({"frame": 0, "obj_id": 6}, "(obj_id 6): object has no prompt"),
        (
            {"frame": 0, "obj_id": 2, "mask": "small.png"},
            "small.png is 10x10 (WxH), expected the image size 96x72",
        ),
    ],
)
def test_bad_prompts(case, tmp_path, capsys, entry, match):
    Image.fromarray(np.zeros((10, 10), np.uint8)).save(tmp_path / "small.png")
    bad(case, tmp_path, capsys, match, prompts=write_prompts(tmp_path, [entry]))


def test_existing_output_refused(case, tmp_path, capsys):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("x")
    assert track(case, tmp_path / "out") != 0
    assert "already exists and is not empty" in capsys.readouterr().err
    assert os.listdir(tmp_path / "out") == ["keep.txt"]
