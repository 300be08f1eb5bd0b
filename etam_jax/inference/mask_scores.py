"""Per-mask statistics for automatic mask generation, jit-friendly (ports of ``sam2.utils.amg``)."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def stability_score(logits_nhw: jax.Array, mask_threshold: float, offset: float) -> jax.Array:
    """As ``calculate_stability_score``: IoU of the masks at ``threshold +- offset``.

    The higher cutoff's mask lies inside the lower one's, so the IoU is the
    ratio of their areas (int32 counts, float32 ratio; 0/0 gives NaN as the
    official).

    Args:
      logits_nhw: ``[N, H, W]`` mask logits.

    Returns:
      ``[N]`` float32.
    """
    inter = jnp.sum(logits_nhw > (mask_threshold + offset), axis=(-2, -1), dtype=jnp.int32)
    union = jnp.sum(logits_nhw > (mask_threshold - offset), axis=(-2, -1), dtype=jnp.int32)
    return inter.astype(jnp.float32) / union.astype(jnp.float32)


def mask_boxes(masks_nhw: jax.Array) -> jax.Array:
    """As ``batched_mask_to_box``: ``[N, H, W]`` bool -> ``[N, 4]`` int32 inclusive (x0, y0, x1, y1).

    An empty mask gets ``[0, 0, 0, 0]``.
    """

    def extent(present: jax.Array) -> tuple[jax.Array, jax.Array]:
        idx = jnp.arange(present.shape[-1], dtype=jnp.int32)
        first = jnp.min(jnp.where(present, idx, present.shape[-1]), axis=-1)
        last = jnp.max(jnp.where(present, idx, -1), axis=-1)
        return first, last

    top, bottom = extent(jnp.any(masks_nhw, axis=-1))
    left, right = extent(jnp.any(masks_nhw, axis=-2))
    boxes = jnp.stack([left, top, right, bottom], axis=-1)
    empty = ~jnp.any(masks_nhw, axis=(-2, -1))
    return jnp.where(empty[:, None], 0, boxes)
