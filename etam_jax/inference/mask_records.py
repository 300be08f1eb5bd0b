"""The masks an automatic mask generator keeps, with their scores (the official ``MaskData``)."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np


@dataclasses.dataclass
class MaskRecords:
    """Masks kept so far, as the official ``MaskData``; N rows.

    Attributes:
      rles: N uncompressed RLEs at the image size.
      boxes: ``[N, 4]`` int (x0, y0, x1, y1) inclusive mask boxes.
      iou_preds, stability: ``[N]`` float32 scores.
      points: ``[N, 2]`` float64 clicks (x, y) that made each mask.
      crop_boxes: ``[N, 4]`` int crop (x0, y0, x1, y1) each mask came from.
    """

    rles: list[dict[str, Any]]
    boxes: np.ndarray
    iou_preds: np.ndarray
    stability: np.ndarray
    points: np.ndarray
    crop_boxes: np.ndarray

    def take(self, idx: np.ndarray) -> MaskRecords:
        idx = np.asarray(idx, np.int64)
        return MaskRecords(
            [self.rles[i] for i in idx],
            *(getattr(self, f.name)[idx] for f in dataclasses.fields(self)[1:]),
        )

    @staticmethod
    def concat(parts: list[MaskRecords]) -> MaskRecords:
        return MaskRecords(
            [r for p in parts for r in p.rles],
            *(
                np.concatenate([getattr(p, f.name) for p in parts])
                for f in dataclasses.fields(MaskRecords)[1:]
            ),
        )
