"""PROMPTS.json parsing and validation (checked against hand-written expectations)."""

import json

import numpy as np
import pytest
from PIL import Image

from etam_jax.errors import EtamError
from etam_jax.inference.prompts_io import group_by_object, load_prompts

HW = (48, 64)  # H, W


def _write(tmp_path, entries, name="prompts.json"):
    path = tmp_path / name
    path.write_text(json.dumps(entries))
    return str(path)


def _mask_png(tmp_path, hw, name="m.png"):
    arr = np.zeros(hw, np.uint8)
    arr[5:20, 10:30] = 255
    Image.fromarray(arr).save(tmp_path / name)
    return arr > 0


def test_parses_points_box_mask(tmp_path):
    want_mask = _mask_png(tmp_path, HW)
    path = _write(
        tmp_path,
        [
            {"frame": 2, "obj_id": 7, "points": [[1, 2], [63, 47]], "labels": [1, 0]},
            {"frame": 0, "obj_id": 7, "box": [0, 0, 64, 48]},
            {"frame": 1, "obj_id": 3, "mask": "m.png", "points": [[5.5, 6]], "labels": [1]},
        ],
    )
    prompts = load_prompts(path, HW, num_frames=3)
    a, b, c = prompts
    np.testing.assert_array_equal(a.points, [[1, 2], [63, 47]])
    assert a.points.dtype == np.float32 and a.labels.dtype == np.int32
    np.testing.assert_array_equal(a.labels, [1, 0])
    assert a.box is None and a.mask is None and a.frame == 2
    np.testing.assert_array_equal(b.box, [0, 0, 64, 48])
    np.testing.assert_array_equal(c.mask, want_mask)
    groups = group_by_object(prompts)
    assert list(groups) == [7, 3]
    assert [p.frame for p in groups[7]] == [0, 2]


def test_segment_has_no_frame(tmp_path):
    path = _write(tmp_path, [{"obj_id": 1, "points": [[3, 4]], "labels": [1]}])
    (p,) = load_prompts(path, HW)
    assert p.frame is None
    with pytest.raises(EtamError, match="'frame' is not allowed"):
        load_prompts(_write(tmp_path, [{"frame": 0, "obj_id": 1, "box": [0, 0, 2, 2]}]), HW)


def test_rgb_mask_any_channel(tmp_path):
    arr = np.zeros(HW + (3,), np.uint8)
    arr[1, 2, 1] = 9
    Image.fromarray(arr).save(tmp_path / "rgb.png")
    (p,) = load_prompts(_write(tmp_path, [{"obj_id": 1, "mask": "rgb.png"}]), HW)
    assert p.mask.shape == HW and p.mask.sum() == 1 and p.mask[1, 2]


@pytest.mark.parametrize(
    "entry,match",
    [
        (
            {"frame": 5, "obj_id": 1, "box": [0, 0, 2, 2]},
            r"frame 5 does not exist; the video has frames 0\.\.2",
        ),
        ({"frame": -1, "obj_id": 1, "box": [0, 0, 2, 2]}, "frame -1 does not exist"),
        ({"frame": 0, "obj_id": 4}, r"obj_id 4\): object has no prompt"),
        ({"frame": 0, "box": [0, 0, 2, 2]}, "missing 'obj_id'"),
        ({"obj_id": 1, "box": [0, 0, 2, 2]}, "missing 'frame'"),
        ({"frame": "0", "obj_id": 1, "box": [0, 0, 2, 2]}, "'frame' must be an integer"),
        (
            {"frame": 0, "obj_id": 1, "points": [[65, 2]], "labels": [1]},
            r"point \(65, 2\) is outside the image \(width 64, height 48\)",
        ),
        ({"frame": 0, "obj_id": 1, "points": [[5, -1]], "labels": [1]}, "outside the image"),
        ({"frame": 0, "obj_id": 1, "box": [0, 0, 10, 49]}, r"box corner \(10, 49\) is outside"),
        ({"frame": 0, "obj_id": 1, "box": [5, 0, 3, 4]}, "x0 < x1"),
        ({"frame": 0, "obj_id": 1, "box": [1, 2, 3]}, "'box' must be numbers"),
        ({"frame": 0, "obj_id": 1, "points": [[1, 2]]}, "must be given together"),
        ({"frame": 0, "obj_id": 1, "points": [[1, 2]], "labels": [1, 1]}, "1 points and 2 labels"),
        ({"frame": 0, "obj_id": 1, "points": [[1, 2]], "labels": [2]}, "labels must be 1"),
        ({"frame": 0, "obj_id": 1, "points": [1, 2], "labels": [1]}, "'points' must be numbers"),
        ({"frame": 0, "obj_id": 1, "box": [0, 0, 2, 2], "color": 3}, "unknown key"),
        ({"frame": 0, "obj_id": 1, "mask": "missing.png"}, "missing.png not found"),
        ({"frame": 0, "obj_id": 1, "mask": 3}, "'mask' must be a path"),
    ],
)
def test_bad_entries(tmp_path, entry, match):
    path = _write(tmp_path, [entry])
    with pytest.raises(EtamError, match=match) as e:
        load_prompts(path, HW, num_frames=3)
    assert "prompts.json entry 0" in str(e.value) and "\n" not in str(e.value)


def test_mask_of_other_size(tmp_path):
    _mask_png(tmp_path, (48, 63), "small.png")
    path = _write(tmp_path, [{"frame": 0, "obj_id": 2, "mask": "small.png"}])
    with pytest.raises(
        EtamError, match=r"small\.png is 63x48 \(WxH\), expected the image size 64x48"
    ):
        load_prompts(path, HW, num_frames=1)


def test_unreadable_mask(tmp_path):
    (tmp_path / "bad.png").write_bytes(b"not a png")
    path = _write(tmp_path, [{"frame": 0, "obj_id": 2, "mask": "bad.png"}])
    with pytest.raises(EtamError, match="cannot read mask file"):
        load_prompts(path, HW, num_frames=1)


def test_file_level_errors(tmp_path):
    with pytest.raises(EtamError, match="prompts file not found"):
        load_prompts(str(tmp_path / "nope.json"), HW, 1)
    (tmp_path / "bad.json").write_text("[{")
    with pytest.raises(EtamError, match="bad.json: not valid JSON"):
        load_prompts(str(tmp_path / "bad.json"), HW, 1)
    with pytest.raises(EtamError, match="non-empty JSON list"):
        load_prompts(_write(tmp_path, []), HW, 1)
    dup = [
        {"frame": 0, "obj_id": 1, "box": [0, 0, 2, 2]},
        {"frame": 0, "obj_id": 1, "points": [[1, 1]], "labels": [1]},
    ]
    with pytest.raises(EtamError, match="object 1 on frame 0 is prompted twice"):
        load_prompts(_write(tmp_path, dup), HW, 1)
