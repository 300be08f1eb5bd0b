"""Our resizes against torch's ``F.interpolate`` directly, many sizes, up and down."""

import jax
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from etam_jax.models.resize import bilinear_weights, resize_bilinear, resize_image
from tests.inference.torchvision_shim import Resize as ShimResize

SIZES = [
    ((7, 9), (7, 9)),
    ((5, 3), (17, 11)),
    ((64, 48), (16, 20)),
    ((100, 37), (64, 64)),
    ((256, 256), (480, 854)),
    ((480, 854), (256, 256)),
    ((33, 2), (5, 2)),  # (width 1 trips a torch AA quirk: every row equal)
    ((1, 1), (3, 4)),
    ((1024, 1024), (256, 256)),
    ((299, 301), (1024, 1024)),
]


def _torch_resize(x: np.ndarray, size, antialias: bool) -> np.ndarray:
    out = F.interpolate(
        torch.from_numpy(x), size=size, mode="bilinear", align_corners=False, antialias=antialias
    )
    return out.numpy()


@pytest.mark.parametrize("antialias", [False, True])
@pytest.mark.parametrize("in_size,out_size", SIZES)
def test_matches_torch_interpolate(in_size, out_size, antialias):
    x = np.random.default_rng(0).standard_normal((2, 3, *in_size)).astype(np.float32) * 10
    ref = _torch_resize(x, out_size, antialias)
    ours = resize_bilinear(x, out_size, antialias=antialias)
    assert ours.dtype == np.float32 and ours.shape == ref.shape
    np.testing.assert_allclose(ours, ref, rtol=0, atol=1e-5)  # |x| ~ 10: float32 rounding


@pytest.mark.parametrize("antialias", [False, True])
def test_jitted_channel_last_matches_torch(antialias):
    x = np.random.default_rng(1).uniform(size=(1, 3, 45, 70)).astype(np.float32)
    ref = _torch_resize(x, (32, 32), antialias)
    ours = jax.jit(lambda v: resize_bilinear(v, (32, 32), axes=(1, 2), antialias=antialias))(
        x.transpose(0, 2, 3, 1)
    )
    np.testing.assert_allclose(np.asarray(ours).transpose(0, 3, 1, 2), ref, rtol=0, atol=1e-6)


@pytest.mark.parametrize("hw", [(32, 32), (20, 50), (90, 70)])
def test_resize_image_matches_torchvision_resize(hw):
    """Resize of a ToTensor'd uint8 image, as SAM2Transforms does (shim = torchvision's formula)."""
    img = np.random.default_rng(2).integers(0, 256, (*hw, 3), dtype=np.uint8)
    ref = ShimResize((32, 32))(torch.from_numpy(img.transpose(2, 0, 1)).float().div(255)).numpy()
    ours = resize_image(img.astype(np.float32) / 255, (32, 32))
    np.testing.assert_allclose(ours.transpose(2, 0, 1), ref, rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    "in_hw,out_hw",
    [
        ((75, 131), (64, 64)),
        ((640, 480), (256, 256)),
        ((480, 854), (256, 256)),
        ((40, 30), (64, 64)),
    ],
)
def test_mask_prompt_threshold_matches_torch(in_hw, out_hw):
    """The video predictor's mask prompt: antialiased resize of a 0/1 mask, then >= 0.5.
    A window straddling an edge sums to 0.5 up to rounding, and the rounding decides
    the pixel (a contraction in another order flipped such pixels of a portrait mask
    in the prompt-matrix test): rectangles and ellipses threshold exactly as torch's,
    and every value, random ones included, is torch's to float32 rounding."""
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[: in_hw[0], : in_hw[1]]
    rect = (yy >= in_hw[0] // 3) & (yy < in_hw[0] * 3 // 4) & (xx >= 7) & (xx < in_hw[1] // 2)
    ellipse = ((yy - in_hw[0] / 2.3) / (in_hw[0] / 3)) ** 2 + ((xx - in_hw[1] / 1.7) / 9.5) ** 2 < 1
    masks = np.stack([rect, ellipse]).astype(np.float32)[:, None]
    ref = _torch_resize(masks, out_hw, True)
    ours = resize_bilinear(masks, out_hw, antialias=True)
    np.testing.assert_array_equal(ours >= 0.5, ref >= 0.5)
    values = rng.normal(size=(1, 1, *in_hw)).astype(np.float32)
    np.testing.assert_allclose(
        resize_bilinear(values, out_hw, antialias=True),
        _torch_resize(values, out_hw, True),
        rtol=1e-6,
        atol=3e-7,
    )


@pytest.mark.parametrize("antialias", [False, True])
def test_weights_bitwise_equal_torch(antialias):
    """Resizing an identity matrix along one axis gives torch's weight matrix exactly."""
    for n_in, n_out in [(256, 854), (854, 256), (1024, 256), (299, 1024), (131, 64), (3, 11)]:
        eye = torch.eye(n_in)[None, None]
        ref = (
            F.interpolate(
                eye, size=(n_in, n_out), mode="bilinear", align_corners=False, antialias=antialias
            )[0, 0]
            .numpy()
            .T
        )
        np.testing.assert_array_equal(bilinear_weights(n_in, n_out, antialias), ref)


def test_weights_are_convex_rows():
    for n_in, n_out in [(10, 3), (3, 10), (1024, 256)]:
        for aa in (False, True):
            w = bilinear_weights(n_in, n_out, aa)
            assert w.shape == (n_out, n_in) and (w >= 0).all()
            np.testing.assert_allclose(w.sum(1), 1.0, atol=1e-12)
