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

It stands in ONLY for torchvision's preprocessing; nothing of the model comes
from here. ``install()`` registers it as ``torchvision`` in ``sys.modules``
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


def _real_torchvision_works() -> bool:
    try:
        import torchvision.transforms  # noqa: F401
    except (ImportError, OSError, RuntimeError, AttributeError):  # absent, or broken against torch
        return False
    return True


def install() -> None:
    """Makes ``import torchvision.transforms`` resolve to this shim if torchvision is absent."""
    if _real_torchvision_works():
        return
    root = types.ModuleType("torchvision")
    transforms = types.ModuleType("torchvision.transforms")
    transforms.ToTensor, transforms.Resize, transforms.Normalize = ToTensor, Resize, Normalize
    root.transforms = transforms
    root.__path__ = []  # a package, so submodule imports resolve through sys.modules
    sys.modules["torchvision"] = root
    sys.modules["torchvision.transforms"] = transforms
