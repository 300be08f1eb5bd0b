"""A stand-in for the few torchvision pieces the official image predictor imports.

torchvision cannot be installed beside this torch build, yet the official
``sam2.utils.transforms`` (``SAM2Transforms``, used by ``SAM2ImagePredictor``)
does ``from torchvision.transforms import Normalize, Resize, ToTensor``. This
module provides exactly those three, written with plain torch as torchvision
documents and implements them for the one case the predictor uses (an
``HxWx3`` uint8 numpy image; a float ``CxHxW`` tensor):

- ``ToTensor``: ``torch.from_numpy(pic.transpose(2, 0, 1))``, then
  ``.to(float32).div(255)`` for uint8 (torchvision ``functional.to_tensor``);
- ``Resize((h, w))``: unchanged when already that size, else
  ``F.interpolate(img[None], size, mode="bilinear", align_corners=False,
  antialias=True)[0]`` (torchvision ``functional.resize`` ->
  ``_functional_tensor.resize``, whose default is bilinear with antialias);
- ``Normalize(mean, std)``: ``(img - mean[:, None, None]) / std[:, None, None]``
  (torchvision ``_functional_tensor.normalize``).

The official automatic mask generator also imports
``torchvision.ops.boxes.batched_nms`` and ``box_area``; they are here too,
as torchvision documents and implements them (``box_area``: ``(x1 - x0) *
(y1 - y0)``; ``batched_nms``: the coordinate trick, each category's boxes
offset by ``idx * (max coordinate + 1)``, then greedy ``nms``: boxes by score,
descending, stable sort, dropping boxes whose IoU with a kept one is above
the threshold).

It stands in ONLY for torchvision's preprocessing and box ops; nothing of the
model comes from here. ``install()`` registers it as ``torchvision`` in ``sys.modules``
(only when the real one is not importable).
"""

from __future__ import annotations

import sys
import types

import numpy as np
import torch
import torch.nn.functional as F


class ToTensor:
    """torchvision ``ToTensor`` for ``HxWxC`` numpy arrays."""

    def __call__(self, pic: np.ndarray) -> torch.Tensor:
        if not isinstance(pic, np.ndarray) or pic.ndim != 3:
            raise TypeError(
                f"torchvision_shim.ToTensor handles HxWxC numpy arrays only, got {type(pic)}"
            )
        img = torch.from_numpy(pic.transpose((2, 0, 1))).contiguous()
        if img.dtype == torch.uint8:
            return img.to(dtype=torch.get_default_dtype()).div(255)
        return img


class Resize(torch.nn.Module):
    """torchvision ``Resize((h, w))`` (bilinear, antialias=True) on a tensor image."""

    def __init__(self, size: tuple[int, int]):
        super().__init__()
        self.size = [int(size[0]), int(size[1])]

    def forward(self, img: torch.Tensor) -> torch.Tensor:
        if [img.shape[-2], img.shape[-1]] == self.size:
            return img
        squeeze = img.dim() == 3
        x = img.unsqueeze(0) if squeeze else img
        x = F.interpolate(x, size=self.size, mode="bilinear", align_corners=False, antialias=True)
        return x.squeeze(0) if squeeze else x


class Normalize(torch.nn.Module):
    """torchvision ``Normalize(mean, std)`` (not in place) on a float tensor image."""

    def __init__(self, mean: list[float], std: list[float]):
        super().__init__()
        self.mean = [float(m) for m in mean]
        self.std = [float(s) for s in std]

    def forward(self, tensor: torch.Tensor) -> torch.Tensor:
        mean = torch.tensor(self.mean, dtype=tensor.dtype, device=tensor.device)
        std = torch.tensor(self.std, dtype=tensor.dtype, device=tensor.device)
        return tensor.sub(mean.view(-1, 1, 1)).div(std.view(-1, 1, 1))


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """torchvision ``ops.boxes.box_area`` for ``[N, 4]`` (x0, y0, x1, y1)."""
    return (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """torchvision ``ops.nms`` (the CPU kernel's greedy loop)."""
    order = torch.sort(scores, descending=True, stable=True).indices
    areas = box_area(boxes)
    suppressed = torch.zeros(len(boxes), dtype=torch.bool)
    keep = []
    for i in order.tolist():
        if suppressed[i]:
            continue
        keep.append(i)
        lt = torch.maximum(boxes[i, :2], boxes[:, :2])
        rb = torch.minimum(boxes[i, 2:], boxes[:, 2:])
        inter = (rb - lt).clamp(min=0).prod(dim=1)
        suppressed |= inter / (areas[i] + areas - inter) > iou_threshold
    return torch.tensor(keep, dtype=torch.int64)


def batched_nms(
    boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor, iou_threshold: float
) -> torch.Tensor:
    """torchvision ``ops.boxes.batched_nms`` (coordinate trick: categories never overlap)."""
    if boxes.numel() == 0:
        return torch.empty((0,), dtype=torch.int64)
    offsets = idxs.to(boxes) * (boxes.max() + 1)
    return nms(boxes + offsets[:, None], scores, iou_threshold)


def _real_torchvision_works() -> bool:
    try:
        import torchvision.transforms  # noqa: F401
    except (
        ImportError,
        OSError,
        RuntimeError,
        AttributeError,
    ):  # absent, or broken against torch
        return False
    return True


def install() -> None:
    """Makes ``import torchvision.transforms`` resolve to this shim if torchvision is absent."""
    if _real_torchvision_works():
        return
    root = types.ModuleType("torchvision")
    transforms = types.ModuleType("torchvision.transforms")
    transforms.ToTensor, transforms.Resize, transforms.Normalize = (
        ToTensor,
        Resize,
        Normalize,
    )
    root.transforms = transforms
    ops = types.ModuleType("torchvision.ops")
    boxes = types.ModuleType("torchvision.ops.boxes")
    boxes.batched_nms, boxes.box_area, boxes.nms = batched_nms, box_area, nms
    ops.boxes, ops.batched_nms, ops.box_area, ops.nms = (
        boxes,
        batched_nms,
        box_area,
        nms,
    )
    root.ops = ops
    root.__path__ = ops.__path__ = []  # packages, so submodule imports resolve via sys.modules
    sys.modules["torchvision"] = root
    sys.modules["torchvision.transforms"] = transforms
    sys.modules["torchvision.ops"] = ops
    sys.modules["torchvision.ops.boxes"] = boxes
