"""Ports of ``sam2.utils.transforms.SAM2Transforms``: image preprocessing and prompt coordinates.

Plus the conversion of a full-size binary mask into the SAM mask prompt,
following the official video path (the image predictor itself only takes
low-res logits).
"""

from __future__ import annotations

import numpy as np

from etam_jax.models.image_normalization import IMAGENET_MEAN, IMAGENET_STD
from etam_jax.models.resize import resize_bilinear, resize_image


def preprocess_image(image: np.ndarray, image_size: int) -> np.ndarray:
    """As ``SAM2Transforms.__call__``: ToTensor (/255), Resize((S, S)), Normalize.

    Args:
      image: ``[H, W, 3]`` uint8 RGB.
      image_size: S, the model resolution.

    Returns:
      ``[1, S, S, 3]`` float32, ImageNet-normalised.
    """
    x = image.astype(np.float32) / np.float32(255)
    x = resize_image(x, (image_size, image_size))  # torchvision Resize: bilinear, antialias
    return ((x - IMAGENET_MEAN) / IMAGENET_STD)[None].astype(np.float32)


def transform_coords(coords: np.ndarray, orig_hw: tuple[int, int], image_size: int) -> np.ndarray:
    """As ``SAM2Transforms.transform_coords(normalize=True)``: pixels -> model-resolution pixels."""
    coords = np.array(coords, np.float32)  # a copy, float32 like torch.as_tensor(float)
    h, w = orig_hw
    coords[..., 0] = coords[..., 0] / np.float32(w)
    coords[..., 1] = coords[..., 1] / np.float32(h)
    return coords * np.float32(image_size)


def mask_input_from_binary(mask: np.ndarray, image_size: int, mask_input_size: int) -> np.ndarray:
    """A full-size binary mask as the low-res mask prompt ``[1, 4g, 4g]`` (values in [0, 1]).

    The official image predictor only takes low-res logits; for a binary mask
    we follow the official video path: resize to the model size (antialiased)
    and threshold at 0.5 (``SAM2VideoPredictor.add_new_mask``), then downsize
    to the prompt encoder's input (antialiased, ``sam2_base._forward_sam_heads``).
    """
    full = resize_bilinear(np.asarray(mask, np.float32), (image_size, image_size), antialias=True)
    binary = (full >= 0.5).astype(np.float32)
    low = resize_bilinear(binary, (mask_input_size, mask_input_size), antialias=True)
    return low[None].astype(np.float32)
