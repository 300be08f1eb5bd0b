"""Small holes and sprinkles removed from mask logits (the official predictor's post-processing).

The official automatic mask generator implements ``min_mask_region_area`` by
building its ``SAM2ImagePredictor`` with ``max_hole_area`` and
``max_sprinkle_area`` equal to it; ``SAM2Transforms.postprocess_masks`` then
edits the low-res logits before upsampling. The official connected components
come from a CUDA extension (``sam2._C``, 8-connectivity); here OpenCV computes
them on the host.
"""

from __future__ import annotations

import numpy as np

HOLE_FILL = 10.0  # postprocess_masks: holes become threshold + 10, sprinkles threshold - 10


def component_areas(binary_hw: np.ndarray) -> np.ndarray:
    """``[H, W]`` int: each True pixel's 8-connected component size, 0 on False pixels.

    As ``sam2.utils.misc.get_connected_components``'s counts.
    """
    import cv2

    _, labels, stats, _ = cv2.connectedComponentsWithStats(
        binary_hw.astype(np.uint8), connectivity=8
    )
    areas = stats[:, cv2.CC_STAT_AREA][labels]
    return np.where(labels > 0, areas, 0)


def remove_small_regions(logits_nhw: np.ndarray, max_area: float, threshold: float = 0.0):
    """Fills holes and removes sprinkles of at most ``max_area`` pixels (``postprocess_masks``).

    Args:
      logits_nhw: ``[N, h, w]`` float32 low-res mask logits.
      max_area: the official ``max_hole_area`` = ``max_sprinkle_area``; > 0.
      threshold: foreground is ``logits > threshold`` (the predictor's
        ``mask_threshold``, 0 in the generator: it does not pass its own).

    Returns:
      ``[N, h, w]`` float32: hole pixels set to ``threshold + 10``, sprinkle
      pixels to ``threshold - 10``; both found on the input mask.
    """
    logits = np.array(logits_nhw, np.float32)
    for mask in logits:
        foreground = mask > threshold
        hole_areas = component_areas(~foreground)
        sprinkle_areas = component_areas(foreground)
        mask[(hole_areas > 0) & (hole_areas <= max_area)] = threshold + HOLE_FILL
        mask[(sprinkle_areas > 0) & (sprinkle_areas <= max_area)] = threshold - HOLE_FILL
    return logits
