"""The model's input normalisation: ImageNet mean / std on [0, 1] pixels (as ``SAM2Transforms``).

Inference preprocessing (numpy, `etam_jax.inference.image_transforms`) and the
training forward pass (uint8 frames on the device, `normalize_uint8`) share it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)


def normalize_uint8(frames: jax.Array) -> jax.Array:
    """uint8 ``[..., S, S, 3]`` -> ImageNet-normalised float32."""
    x = frames.astype(jnp.float32) / 255.0
    return (x - jnp.asarray(IMAGENET_MEAN)) / jnp.asarray(IMAGENET_STD)
