"""Points from masks, inside jit: noisy boxes and uniform clicks from error regions.

Ports of facebookresearch/sam2 ``sam2/modeling/sam2_utils.py::sample_box_points``
and ``sample_random_points_from_errors`` (``sam2/utils/misc.py::mask_to_box``)
for any leading shape ``[*n, H, W]``; coordinates are ``(x, y)`` pixel indices.
Used by `prompt_simulation` for training prompts.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int

from etam_jax.models import prompt_labels


def uniform_noise(key: Array, shape: tuple[int, ...]) -> Array:
    """Uniform [0, 1) noise drawn flat and reshaped: XLA compiles a 1-D threefry ~5x faster."""
    return jax.random.uniform(key, (math.prod(shape),)).reshape(shape)


def mask_to_box(masks: Bool[Array, "*n h w"]) -> Int[Array, "*n 4"]:
    """``(x0, y0, x1, y1)`` pixel extent; an empty mask gives ``(W, H, -1, -1)`` (as official)."""
    h, w = masks.shape[-2:]
    xs, ys = jnp.arange(w), jnp.arange(h)[:, None]
    return jnp.stack(
        [
            jnp.min(jnp.where(masks, xs, w), axis=(-2, -1)),
            jnp.min(jnp.where(masks, ys, h), axis=(-2, -1)),
            jnp.max(jnp.where(masks, xs, -1), axis=(-2, -1)),
            jnp.max(jnp.where(masks, ys, -1), axis=(-2, -1)),
        ],
        axis=-1,
    )


def sample_box_points(
    key: Array, masks: Bool[Array, "*n h w"], noise: float, noise_bound: float
) -> tuple[Float[Array, "*n 2 2"], Int[Array, "*n 2"]]:
    """A noisy box as two corner points labelled 2, 3, as sam2_utils.sample_box_points.

    Each coordinate moves uniformly by up to ``min(noise * box side, noise_bound)``
    and is clamped to the grid. An empty mask's box stays inverted (clamped to the
    far corners), as the official code does.
    """
    h, w = masks.shape[-2:]
    box = mask_to_box(masks).astype(jnp.float32)
    max_dx = jnp.minimum((box[..., 2] - box[..., 0]) * noise, noise_bound)
    max_dy = jnp.minimum((box[..., 3] - box[..., 1]) * noise, noise_bound)
    jitter = 2 * uniform_noise(key, box.shape) - 1
    box = box + jitter * jnp.stack([max_dx, max_dy, max_dx, max_dy], axis=-1)
    box = jnp.clip(box, 0.0, jnp.array([w - 1, h - 1, w - 1, h - 1], jnp.float32))
    labels = jnp.broadcast_to(jnp.array(prompt_labels.BOX, jnp.int32), (*masks.shape[:-2], 2))
    return box.reshape(*masks.shape[:-2], 2, 2), labels


def sample_points_from_errors(
    key: Array,
    gt_masks: Bool[Array, "*n h w"],
    pred_masks: Bool[Array, "*n h w"] | None,
) -> tuple[Float[Array, "*n 2"], Int[Array, "*n"]]:
    """One click per mask, uniform over its error pixels, as sample_random_points_from_errors.

    False negatives give a positive click (1), false positives a negative one (0).
    Where the prediction is exactly right, a negative click from the background;
    ``pred_masks=None`` (empty prediction) samples a positive click from the GT, or
    a background click for an empty GT. The draw is an argmax of uniform noise over
    the region's pixels (a uniform draw; ``(0, 0)`` labelled 0 if the region is empty).

    Returns:
        ``(coords [*n, 2] float32 (x, y), labels [*n] int32)``.
    """
    gt = gt_masks.astype(bool)
    pred = jnp.zeros_like(gt) if pred_masks is None else pred_masks.astype(bool)
    fn = gt & ~pred
    all_correct = jnp.all(gt == pred, axis=(-2, -1), keepdims=True)
    region = (~gt & pred) | fn | (all_correct & ~gt)
    h, w = gt.shape[-2:]
    flat = region.reshape(*gt.shape[:-2], h * w)
    scores = jnp.where(flat, uniform_noise(key, flat.shape), -1.0)
    idx = jnp.argmax(scores, axis=-1)
    labels = jnp.take_along_axis(fn.reshape(flat.shape), idx[..., None], axis=-1)[..., 0]
    coords = jnp.stack([idx % w, idx // w], axis=-1).astype(jnp.float32)
    return coords, labels.astype(jnp.int32)
