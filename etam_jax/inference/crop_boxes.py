"""Point grids and image crops for automatic mask generation (ports of ``sam2.utils.amg``).

Boxes are ``[x0, y0, x1, y1]`` pixels (x1, y1 exclusive for crops, inclusive
for mask boxes, as the official code uses them); points are ``(x, y)``.
"""

from __future__ import annotations

import itertools
import math

import numpy as np


def build_point_grid(n_per_side: int) -> np.ndarray:
    """As ``build_point_grid``: ``[n*n, 2]`` (x, y) cell centres in ``[0, 1]``, x fastest."""
    offset = 1 / (2 * n_per_side)
    side = np.linspace(offset, 1 - offset, n_per_side)
    xs, ys = np.meshgrid(side, side)  # ys[i, j] = side[i], xs[i, j] = side[j]
    return np.stack([xs, ys], axis=-1).reshape(-1, 2)


def build_all_layer_point_grids(
    n_per_side: int, n_layers: int, scale_per_layer: int
) -> list[np.ndarray]:
    """As ``build_all_layer_point_grids``: layer i has ``n_per_side / scale**i`` points a side."""
    return [build_point_grid(int(n_per_side / (scale_per_layer**i))) for i in range(n_layers + 1)]


def generate_crop_boxes(
    im_hw: tuple[int, int], n_layers: int, overlap_ratio: float
) -> tuple[list[list[int]], list[int]]:
    """As ``generate_crop_boxes``: the whole image, then ``(2**(i+1))**2`` crops in layer i+1.

    Returns:
      crop boxes ``[x0, y0, x1, y1]`` and the layer index of each.
    """
    im_h, im_w = im_hw
    crop_boxes, layer_idxs = [[0, 0, im_w, im_h]], [0]
    for i_layer in range(n_layers):
        n_crops = 2 ** (i_layer + 1)
        overlap = int(overlap_ratio * min(im_h, im_w) * (2 / n_crops))
        # crop_len: n crops overlapping by `overlap` cover the side.
        crop_w = math.ceil((overlap * (n_crops - 1) + im_w) / n_crops)
        crop_h = math.ceil((overlap * (n_crops - 1) + im_h) / n_crops)
        x0s = [(crop_w - overlap) * i for i in range(n_crops)]
        y0s = [(crop_h - overlap) * i for i in range(n_crops)]
        for x0, y0 in itertools.product(x0s, y0s):  # x-major, as the official order
            crop_boxes.append([x0, y0, min(x0 + crop_w, im_w), min(y0 + crop_h, im_h)])
            layer_idxs.append(i_layer + 1)
    return crop_boxes, layer_idxs


def uncrop_boxes(boxes: np.ndarray, crop_box: list[int]) -> np.ndarray:
    """``[N, 4]`` boxes in crop pixels -> image pixels (``uncrop_boxes_xyxy``)."""
    x0, y0 = crop_box[:2]
    return boxes + np.array([x0, y0, x0, y0], boxes.dtype)


def uncrop_points(points: np.ndarray, crop_box: list[int]) -> np.ndarray:
    """``[N, 2]`` points in crop pixels -> image pixels (``uncrop_points``)."""
    return points + np.array(crop_box[:2], points.dtype)


def uncrop_masks(masks_nhw: np.ndarray, crop_box: list[int], orig_hw: tuple[int, int]):
    """Zero-pads ``[N, h, w]`` crop masks to ``[N, H, W]`` at the crop's place (``uncrop_masks``)."""
    x0, y0, x1, y1 = crop_box
    h, w = orig_hw
    if (x0, y0, x1, y1) == (0, 0, w, h):
        return masks_nhw
    return np.pad(masks_nhw, ((0, 0), (y0, h - y1), (x0, w - x1)))


def is_box_near_crop_edge(
    boxes: np.ndarray, crop_box: list[int], orig_box: list[int], atol: float = 20.0
) -> np.ndarray:
    """As ``is_box_near_crop_edge``: ``[N]`` True for crop-pixel boxes touching an inner crop edge.

    A side within ``atol`` of the crop's side but not of the image's means the
    object probably continues outside the crop.
    """
    boxes = uncrop_boxes(boxes, crop_box).astype(np.float32)
    near_crop = np.abs(boxes - np.asarray(crop_box, np.float32)) <= atol
    near_image = np.abs(boxes - np.asarray(orig_box, np.float32)) <= atol
    return np.any(near_crop & ~near_image, axis=1)


def box_xyxy_to_xywh(boxes: np.ndarray) -> np.ndarray:
    """``[..., 4]`` (x0, y0, x1, y1) -> (x0, y0, w, h)."""
    boxes = np.array(boxes)
    boxes[..., 2:] -= boxes[..., :2]
    return boxes
