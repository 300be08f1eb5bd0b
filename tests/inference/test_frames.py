"""Frame listing/decoding: bit-exact against the official `load_video_frames`."""

import os

import numpy as np
import pytest
from PIL import Image

from etam_jax.errors import EtamError
from etam_jax.inference.frames import VideoFrames, list_frames


def write_jpegs(folder, n, hw=(45, 70), seed=0, names=None):
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = names or [f"{i:05d}.jpg" for i in range(n)]
    for name in names:
        arr = rng.integers(0, 256, hw + (3,), dtype=np.uint8)
        arr[5:25, 10:40] = rng.integers(0, 256, 3, dtype=np.uint8)
        Image.fromarray(arr).save(os.path.join(folder, name), quality=90)
    return names


@pytest.mark.parametrize("image_size", [64, 1024])
def test_bit_exact_vs_official(tmp_path, image_size):
    from sam2.utils.misc import load_video_frames

    # Mixed extensions and unpadded numbers: official order is numeric.
    names = ["10.jpg", "2.JPEG", "3.jpeg", "0.JPG"]
    write_jpegs(str(tmp_path), 0, names=names)
    (tmp_path / "notes.txt").write_text("ignored")
    want, h, w = load_video_frames(str(tmp_path), image_size)
    frames = VideoFrames(str(tmp_path), image_size)
    assert frames.names == ["0.JPG", "2.JPEG", "3.jpeg", "10.jpg"]
    assert frames.stems == ["0", "2", "3", "10"]
    assert (frames.height, frames.width) == (h, w) == (45, 70)
    got = np.stack([img for _, img in frames.stream(range(len(frames)))])
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, want.numpy().transpose(0, 2, 3, 1))


def test_stream_order_and_early_stop(tmp_path):
    write_jpegs(str(tmp_path), 6)
    frames = VideoFrames(str(tmp_path), 32)
    order = [5, 4, 3, 2, 1, 0]
    got = [(i, img) for i, img in frames.stream(order, prefetch=2)]
    assert [i for i, _ in got] == order
    np.testing.assert_array_equal(got[0][1], frames.load(5))
    it = frames.stream(range(6))
    next(it)
    it.close()  # stops the loading thread without hanging


def test_folder_errors(tmp_path):
    with pytest.raises(EtamError, match="frames folder not found"):
        VideoFrames(str(tmp_path / "nope"), 32)
    (tmp_path / "a.png").write_bytes(b"")
    with pytest.raises(EtamError, match="no JPEG frames"):
        list_frames(str(tmp_path))
    write_jpegs(str(tmp_path), 0, names=["x1.jpg"])
    with pytest.raises(EtamError, match="x1.jpg: frame names must be integers"):
        list_frames(str(tmp_path))


def test_unreadable_and_mismatched_frames(tmp_path):
    write_jpegs(str(tmp_path), 2)
    (tmp_path / "00002.jpg").write_bytes(b"garbage")
    write_jpegs(str(tmp_path), 0, hw=(30, 30), names=["00003.jpg"])
    frames = VideoFrames(str(tmp_path), 32)
    with pytest.raises(EtamError, match="00002.jpg: cannot read JPEG frame"):
        list(frames.stream(range(4)))
    with pytest.raises(
        EtamError, match="00003.jpg: frame is 30x30 .* all frames must have one size"
    ):
        frames.load(3)
