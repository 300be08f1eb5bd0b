"""Augmentations: masks stay on their objects, one draw per clip, seeded, Pillow-equivalent."""

import numpy as np
import pytest
from PIL import Image, ImageEnhance

from data_pipelines import color_jitter
from data_pipelines.transforms import AugmentSpec, augment_clip, geometry, warp_frame, warp_masks
from tests.data_pipelines.drawn_records import COLOURS, disc, drawn_clip


def erode(mask: np.ndarray, r: int = 2) -> np.ndarray:
    """bool [H, W] minus every pixel within r (chessboard) of the outside."""
    out = mask.copy()
    padded = np.pad(mask, r, constant_values=False)
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            out &= padded[r + dy : r + dy + mask.shape[0], r + dx : r + dx + mask.shape[1]]
    return out


def is_colour(frame: np.ndarray, k: int) -> np.ndarray:
    """bool [H, W]: pixels whose dominant channel is object k's (drawn colours are one-hot-ish)."""
    c = int(np.argmax(COLOURS[k]))
    others = np.delete(frame.astype(int), c, axis=-1).max(-1)
    return frame[..., c].astype(int) - others > 60


@pytest.mark.parametrize("seed", range(12))
def test_masks_stay_on_their_objects(seed):
    frames, masks = drawn_clip(seed, num_frames=1, num_objects=2, height=96, width=128)
    spec = AugmentSpec(resolution=80, affine_tries=4, grayscale_prob=0.0)
    out_f, out_m = augment_clip(frames, masks, spec, np.random.default_rng(seed))
    for k in range(2):
        inner = erode(out_m[0, k])
        assert inner.sum() > 20
        assert is_colour(out_f[0], k)[inner].mean() > 0.98  # the mask lies on the object
        painted = erode(is_colour(out_f[0], k))
        assert out_m[0, k][painted].mean() > 0.98  # and covers it


def test_geometry_directions():
    """torchvision F.affine: positive angle turns clockwise on screen (y down); flip mirrors x."""
    h = w = 64
    m = disc(h, w, 52, 32, 5)[None]
    out = np.zeros((1, h, w), np.uint8)
    warp_masks(m, geometry(h, w, w, False, 90.0, 0.0), w, out)
    ys, xs = np.nonzero(out[0])
    assert abs(xs.mean() + 0.5 - 32) < 1 and abs(ys.mean() + 0.5 - 52) < 1  # right -> below
    warp_masks(m, geometry(h, w, w, True, 0.0, 0.0), w, out)
    ys, xs = np.nonzero(out[0])
    assert abs(xs.mean() + 0.5 - 12) < 1 and abs(ys.mean() + 0.5 - 32) < 1


def test_upsampling_keeps_pixel_centres():
    """A square resize of masks with nearest = every pixel becomes a 2x2 block."""
    rng = np.random.default_rng(0)
    m = rng.random((3, 20, 30)) > 0.5
    out = np.zeros((3, 40, 40), np.uint8)
    warp_masks(m, geometry(20, 30, 40, False, 0.0, 0.0), 40, out)
    rows = np.floor((np.arange(40) + 0.5) * 20 / 40).astype(int)  # source pixel under each centre
    cols = np.floor((np.arange(40) + 0.5) * 30 / 40).astype(int)
    ref = m[:, rows][:, :, cols]
    np.testing.assert_array_equal(out.astype(bool), ref)


def test_warps_match_pillow_transform():
    """Same matrix through Pillow's affine transform (its own pixel convention) as reference."""
    frames, masks = drawn_clip(3, num_frames=1, num_objects=1, height=90, width=120)
    fwd = geometry(90, 120, 100, True, 17.0, -12.0)
    inv = tuple(np.linalg.inv(fwd)[:2].ravel())
    out_f = np.zeros((100, 100, 4), np.uint8)
    out_m = np.zeros((1, 100, 100), np.uint8)
    warp_frame(frames[0], fwd, 100, (0, 0, 0), out_f)
    out_f = out_f[..., :3]
    warp_masks(masks[0], fwd, 100, out_m)
    ref_m = np.asarray(
        Image.fromarray(masks[0, 0]).transform((100, 100), Image.AFFINE, inv, Image.NEAREST)
    )
    ref_f = np.asarray(
        Image.fromarray(frames[0]).transform((100, 100), Image.AFFINE, inv, Image.BILINEAR)
    )
    assert (out_m[0].astype(bool) == ref_m).mean() > 0.995
    assert np.abs(out_f.astype(int) - ref_f.astype(int)).mean() < 2.0


def test_clip_gets_one_draw():
    """A static scene stays static: same geometry (masks) for every frame; per-frame jitter only."""
    frames, masks = drawn_clip(5, num_frames=1, num_objects=2)
    frames, masks = np.repeat(frames, 4, 0), np.repeat(masks, 4, 0)
    for seed in range(4):
        _, out_m = augment_clip(
            frames, masks, AugmentSpec(resolution=64), np.random.default_rng(seed)
        )
        assert (out_m == out_m[:1]).all()
        spec = AugmentSpec(resolution=64, frame_jitter=(0.0, 0.0, 0.0), grayscale_prob=0.5)
        out_f, _ = augment_clip(frames, masks, spec, np.random.default_rng(seed))
        assert (out_f == out_f[:1]).all()


def test_seeded():
    frames, masks = drawn_clip(7, num_frames=3, num_objects=2)
    spec = AugmentSpec(resolution=48)
    a = augment_clip(frames, masks, spec, np.random.default_rng(11))
    b = augment_clip(frames, masks, spec, np.random.default_rng(11))
    c = augment_clip(frames, masks, spec, np.random.default_rng(12))
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])


def test_padding_and_resize_only():
    frames, masks = drawn_clip(2, num_frames=2, num_objects=2, height=64, width=64)
    out_f, out_m = augment_clip(
        frames, masks, AugmentSpec.resize_only(64), np.random.default_rng(0), num_objects=5
    )
    assert out_f.shape == (2, 64, 64, 3) and out_m.shape == (2, 5, 64, 64)
    np.testing.assert_array_equal(out_f, frames)  # identity geometry, no colour ops
    np.testing.assert_array_equal(out_m[:, :2], masks)
    assert not out_m[:, 2:].any()


def pillow_ops(img: Image.Image, ops) -> np.ndarray:
    for kind, f in ops:
        if kind == "grayscale":
            img = img.convert("L").convert("RGB")
        else:
            enhancer = {
                "brightness": ImageEnhance.Brightness,
                "contrast": ImageEnhance.Contrast,
                "saturation": ImageEnhance.Color,
            }[kind]
            img = enhancer(img).enhance(f)
    return np.asarray(img).astype(int)


@pytest.mark.parametrize("gray", [False, True])
def test_colour_matrix_equals_pillow_chain(gray):
    """torchvision's adjust_* on PIL images are ImageEnhance; our one matrix must agree."""
    rng = np.random.default_rng(2)
    frame = rng.integers(70, 180, (32, 40, 3)).astype(np.uint8)
    for _ in range(5):
        ops = color_jitter.draw_jitter(rng, (0.1, 0.05, 0.05))
        ops = (
            ops
            + ([("grayscale", 1.0)] if gray else [])
            + color_jitter.draw_jitter(rng, (0.1, 0.1, 0.1))
        )
        ours = color_jitter.apply_colour(frame.copy(), ops).astype(int)
        rgba = np.concatenate([frame, np.full(frame.shape[:2] + (1,), 77, np.uint8)], -1)
        np.testing.assert_array_equal(
            color_jitter.apply_colour(rgba, ops, np.empty_like(frame)), ours
        )  # alpha is ignored
        # Pillow truncates to uint8 after every step (Blend.c), we round once: <= 1 level per step.
        assert np.abs(ours - pillow_ops(Image.fromarray(frame), ops)).max() <= len(ops) + 1


def test_boxes_only_speed_up():
    """Warping only the window a mask's box reaches gives exactly the full warp."""
    frames, masks = drawn_clip(9, num_frames=3, num_objects=3, height=80, width=112)
    masks[1, 2] = False  # an empty mask (box of zeros)
    boxes = np.zeros(masks.shape[:2] + (4,))
    for i, j in np.ndindex(*masks.shape[:2]):
        ys, xs = np.nonzero(masks[i, j])
        if xs.size:
            boxes[i, j] = [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
    for seed in range(6):
        spec = AugmentSpec(resolution=72)
        full = augment_clip(frames, masks, spec, np.random.default_rng(seed), 4)
        boxed = augment_clip(frames, masks, spec, np.random.default_rng(seed), 4, boxes)
        np.testing.assert_array_equal(full[1], boxed[1])
        np.testing.assert_array_equal(full[0], boxed[0])


def test_example_boxes_from_rle():
    from data_pipelines.examples import mask_boxes
    from tests.data_pipelines.drawn_records import record_from_arrays

    frames, masks = drawn_clip(4, num_frames=2, num_objects=2)
    rec = record_from_arrays(frames, masks, "boxes")
    got = mask_boxes(rec, np.array([1]), np.array([1, 0]))
    for j, o in enumerate([1, 0]):
        ys, xs = np.nonzero(masks[1, o])
        np.testing.assert_allclose(got[0, j], [xs.min(), ys.min(), np.ptp(xs) + 1, np.ptp(ys) + 1])
