"""Overlays: colours exactly where the masks are, contours, videos readable back with PyAV."""

import av
import numpy as np
import pytest
from PIL import Image

from etam_jax.errors import EtamError
from etam_jax.inference.overlay import PALETTE, color_for, mask_contour, overlay, write_video
from etam_jax.inference.overlay_frames import OverlayFrames


def frame(h=20, w=30, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def box_mask(h, w, y0, y1, x0, x1):
    m = np.zeros((h, w), bool)
    m[y0:y1, x0:x1] = True
    return m


def test_palette_is_fixed_and_distinct():
    assert len({tuple(c) for c in PALETTE}) == len(PALETTE)
    np.testing.assert_array_equal(color_for(3), PALETTE[3])
    np.testing.assert_array_equal(color_for(13), PALETTE[3])
    np.testing.assert_array_equal(color_for(-1), PALETTE[-1])


def test_contour_is_the_inner_boundary():
    m = box_mask(10, 10, 2, 7, 3, 9)  # 5 x 6 box
    c = mask_contour(m)
    inner = box_mask(10, 10, 3, 6, 4, 8)
    np.testing.assert_array_equal(c, m & ~inner)
    full = np.ones((4, 4), bool)  # image borders are not contours
    assert not mask_contour(full).any()


def test_overlay_pixels():
    f = frame()
    a = box_mask(20, 30, 2, 12, 3, 15)
    b = box_mask(20, 30, 8, 18, 10, 25)
    out = overlay(f, {7: b, 2: a})
    outside = ~(a | b)
    np.testing.assert_array_equal(out[outside], f[outside])  # untouched where no mask
    edge_a, edge_b = mask_contour(a), mask_contour(b)
    # Interior of a only: blended by hand (alpha 0.5, rounded).
    only_a = a & ~b & ~edge_a
    want = np.rint(0.5 * f[only_a].astype(np.float64) + 0.5 * PALETTE[2]).astype(np.uint8)
    np.testing.assert_array_equal(out[only_a], want)
    # Contours in the plain colour; b (larger id) drawn last, on top.
    np.testing.assert_array_equal(out[edge_b], np.broadcast_to(PALETTE[7], out[edge_b].shape))
    np.testing.assert_array_equal(
        out[edge_a & ~b], np.broadcast_to(PALETTE[2], out[edge_a & ~b].shape)
    )
    plain = overlay(f, {2: a}, contour=False)
    np.testing.assert_array_equal(
        plain[edge_a], np.rint(0.5 * f[edge_a] + 0.5 * PALETTE[2]).astype(np.uint8)
    )


def test_overlay_bad_input():
    with pytest.raises(
        EtamError, match=r"object 3's mask is \(5, 5\), expected the frame size \(20, 30\)"
    ):
        overlay(frame(), {3: np.ones((5, 5), bool)})
    with pytest.raises(EtamError, match="frame must be"):
        overlay(frame().astype(np.float32), {})


def read_back(path):
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


@pytest.mark.parametrize(
    "suffix,hw,want_hw",
    [
        (".mp4", (32, 48), (32, 48)),
        (".mp4", (31, 45), (32, 46)),  # yuv420p: padded to even
        (".gif", (31, 45), (31, 45)),
    ],
)
def test_write_video_reads_back(tmp_path, suffix, hw, want_hw):
    frames = [
        np.full(hw + (3,), c, np.uint8)
        for c in ((200, 30, 30), (30, 200, 30), (30, 30, 200), (90, 90, 90))
    ]
    path = tmp_path / f"v{suffix}"
    assert write_video(str(path), iter(frames), fps=5) == 4
    got = read_back(path)
    assert len(got) == 4 and all(g.shape == want_hw + (3,) for g in got)
    for g, f in zip(got, frames):  # lossy codecs: flat colours come back close
        assert np.abs(g[: hw[0], : hw[1]].astype(int) - f).mean() < 6


def test_write_video_bad_input(tmp_path):
    with pytest.raises(EtamError, match=r"v.avi: video must end in one of \('.mp4', '.gif'\)"):
        write_video(str(tmp_path / "v.avi"), [])
    with pytest.raises(EtamError, match=r"frame 1 is \(8, 8\), the first was \(4, 4\)"):
        write_video(str(tmp_path / "v.mp4"), [frame(4, 4), frame(8, 8)])


def test_overlay_frames_out_of_order(tmp_path):
    """Revisited frames (a reverse pass) rewrite their PNG; the video is rebuilt in frame order."""
    f = [frame(16, 16, seed=i) for i in range(4)]
    m = box_mask(16, 16, 4, 12, 4, 12)
    with OverlayFrames(str(tmp_path / "ov"), str(tmp_path / "ov.mp4"), fps=4) as ov:
        for t in (1, 2, 3):
            ov.add(t, f"{t:05d}", f[t], {})
        for t in (1, 0):
            ov.add(t, f"{t:05d}", f[t], {1: m})
    pngs = {t: np.asarray(Image.open(tmp_path / "ov" / f"{t:05d}.png")) for t in range(4)}
    np.testing.assert_array_equal(pngs[1], overlay(f[1], {1: m}))
    np.testing.assert_array_equal(pngs[3], f[3])
    got = read_back(tmp_path / "ov.mp4")
    assert len(got) == 4
    for t in range(4):  # each decoded frame is closest to its own PNG
        errs = [np.abs(got[t].astype(int) - pngs[s]).mean() for s in range(4)]
        assert int(np.argmin(errs)) == t, errs
