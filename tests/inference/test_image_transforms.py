"""SAM2Transforms ports against the official ``SAM2Transforms`` (torchvision shim for its resize)."""

import numpy as np
import pytest
import torch

from etam_jax.inference.image_transforms import preprocess_image, transform_coords
from tests.inference import torchvision_shim

torchvision_shim.install()
from sam2.utils.transforms import SAM2Transforms


@pytest.mark.parametrize("hw,size", [((180, 300), 256), ((64, 64), 64), ((50, 400), 128)])
def test_preprocess_matches_official(hw, size):
    image = np.random.default_rng(0).integers(0, 256, (*hw, 3), dtype=np.uint8)
    ref = SAM2Transforms(size, mask_threshold=0.0)(image).numpy()
    ours = preprocess_image(image, size)
    assert ours.shape == (1, size, size, 3) and ours.dtype == np.float32
    np.testing.assert_allclose(ours[0].transpose(2, 0, 1), ref, rtol=0, atol=1e-5)


def test_transform_coords_matches_official():
    coords = np.random.default_rng(1).uniform(0, 300, (2, 5, 2)).astype(np.float32)
    ref = SAM2Transforms(1024, 0.0).transform_coords(
        torch.from_numpy(coords), normalize=True, orig_hw=(180, 300)
    )
    np.testing.assert_array_equal(transform_coords(coords, (180, 300), 1024), ref.numpy())
