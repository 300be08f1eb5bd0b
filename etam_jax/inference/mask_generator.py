"""Automatic mask generation: masks for everything in an image from a grid of clicks.

A port of the official ``SAM2AutomaticMaskGenerator`` (``sam2/automatic_mask_generator.py``):
for the whole image and, with ``crop_n_layers`` > 0, for overlapping crops,
click every point of a regular grid, keep the masks with a high predicted IoU
and a stable outline, drop masks cut by an inner crop edge, remove duplicates
by box NMS (within a crop, then across crops, preferring smaller crops) and
return COCO-style records.

The model runs in batches of ``points_per_batch`` clicks through our
:class:`~etam_jax.inference.image_predictor.ImagePredictor` with a static batch
(the last one padded), so one decoder compilation serves every batch; the
upsampling, stability scores and mask boxes run in one jitted step per crop
size. Filtering, NMS, RLE and the small-region cleanup run on the host.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import numpy as np
from flax import nnx

from etam_jax.errors import EtamError
from etam_jax.inference import crop_boxes as crops
from etam_jax.inference.box_nms import box_area, nms
from etam_jax.inference.image_predictor import LOW_RES_CLAMP, ImagePredictor
from etam_jax.inference.image_transforms import transform_coords
from etam_jax.inference.mask_cleanup import remove_small_regions
from etam_jax.inference.mask_records import MaskRecords
from etam_jax.inference.mask_rle import (
    area_from_rle,
    coco_encode_rle,
    mask_to_rle,
    rle_to_mask,
)
from etam_jax.inference.mask_scores import mask_boxes, stability_score
from etam_jax.models.resize import resize_bilinear

OUTPUT_MODES = ("binary_mask", "uncompressed_rle", "coco_rle")


@functools.partial(jax.jit, static_argnames=("size", "mask_threshold", "offset"))
def _masks_and_scores(low_res_nhw, size, mask_threshold, offset):
    """Upsampled (``postprocess_masks``) binary masks, stability scores and boxes."""
    logits = resize_bilinear(low_res_nhw, size)
    masks = logits > mask_threshold
    return masks, stability_score(logits, mask_threshold, offset), mask_boxes(masks)


class MaskGenerator:
    """Generates masks for a whole image (``SAM2AutomaticMaskGenerator``; same defaults).

    Args:
      model: an ``EfficientTAM`` with weights, or an ``ImagePredictor`` of one
        (its compiled encoder and decoder are reused).
      points_per_side: grid clicks per image side (exclusive with ``point_grids``).
      points_per_batch: clicks per model call (the static batch).
      pred_iou_thresh: keep masks whose predicted IoU is above it (0: no filter).
      stability_score_thresh: keep masks whose stability is at least it (0: none).
      stability_score_offset: the logit shift the stability score uses.
      mask_threshold: logits above it are foreground.
      box_nms_thresh: box IoU above which a crop's lower-scored mask is dropped.
      crop_n_layers: extra crop layers; layer i has ``(2**i)**2`` crops.
      crop_nms_thresh: box IoU for the NMS across crops.
      crop_overlap_ratio: crop overlap as a fraction of the short image side.
      crop_n_points_downscale_factor: layer i uses ``points_per_side / f**i``.
      point_grids: explicit ``[n, 2]`` grids in ``[0, 1]``, one per layer.
      min_mask_region_area: fill holes and remove islands up to this many
        pixels of the low-res mask (the official predictor's
        ``max_hole_area`` / ``max_sprinkle_area``).
      output_mode: ``"binary_mask"``, ``"uncompressed_rle"`` or ``"coco_rle"``.
      use_m2m: refine each mask once with itself as the mask prompt.
      multimask_output: three masks per click instead of one.
    """

    def __init__(
        self,
        model: nnx.Module | ImagePredictor,
        points_per_side: int | None = 32,
        points_per_batch: int = 64,
        pred_iou_thresh: float = 0.8,
        stability_score_thresh: float = 0.95,
        stability_score_offset: float = 1.0,
        mask_threshold: float = 0.0,
        box_nms_thresh: float = 0.7,
        crop_n_layers: int = 0,
        crop_nms_thresh: float = 0.7,
        crop_overlap_ratio: float = 512 / 1500,
        crop_n_points_downscale_factor: int = 1,
        point_grids: list[np.ndarray] | None = None,
        min_mask_region_area: int = 0,
        output_mode: str = "binary_mask",
        use_m2m: bool = False,
        multimask_output: bool = True,
    ):
        if (points_per_side is None) == (point_grids is None):
            raise EtamError("MaskGenerator: give exactly one of points_per_side and point_grids")
        if output_mode not in OUTPUT_MODES:
            raise EtamError(
                f"MaskGenerator: output_mode must be one of {OUTPUT_MODES}, found {output_mode!r}"
            )
        if points_per_side is not None:
            point_grids = crops.build_all_layer_point_grids(
                points_per_side, crop_n_layers, crop_n_points_downscale_factor
            )
        self.point_grids = point_grids
        self.predictor = model if isinstance(model, ImagePredictor) else ImagePredictor(model)
        self.points_per_batch = points_per_batch
        self.pred_iou_thresh = pred_iou_thresh
        self.stability_score_thresh = stability_score_thresh
        self.stability_score_offset = stability_score_offset
        self.mask_threshold = mask_threshold
        self.box_nms_thresh = box_nms_thresh
        self.crop_n_layers = crop_n_layers
        self.crop_nms_thresh = crop_nms_thresh
        self.crop_overlap_ratio = crop_overlap_ratio
        self.min_mask_region_area = min_mask_region_area
        self.output_mode = output_mode
        self.use_m2m = use_m2m
        self.multimask_output = multimask_output
        # Masks per batch, the static size of the upsampling step.
        self._mask_batch = points_per_batch * (3 if multimask_output else 1)

    def generate(self, image: np.ndarray) -> list[dict[str, Any]]:
        """Masks for ``image`` (``[H, W, 3]`` uint8 RGB), as the official ``generate``.

        Returns:
          one record per mask: ``segmentation`` (per ``output_mode``), ``area``,
          ``bbox`` (x, y, w, h), ``predicted_iou``, ``point_coords``
          (``[[x, y]]``), ``stability_score``, ``crop_box`` (x, y, w, h).
        """
        data = self.generate_records(image)
        f32 = np.float32  # the official converts every tensor with .float() before output
        records = []
        for i, rle in enumerate(data.rles):
            records.append(
                {
                    "segmentation": self._encode(rle),
                    "area": area_from_rle(rle),
                    "bbox": crops.box_xyxy_to_xywh(data.boxes[i].astype(f32)).tolist(),
                    "predicted_iou": float(data.iou_preds[i]),
                    "point_coords": [data.points[i].astype(f32).tolist()],
                    "stability_score": float(data.stability[i]),
                    "crop_box": crops.box_xyxy_to_xywh(data.crop_boxes[i].astype(f32)).tolist(),
                }
            )
        return records

    def _encode(self, rle: dict[str, Any]):
        if self.output_mode == "coco_rle":
            return coco_encode_rle(rle)
        return rle_to_mask(rle) if self.output_mode == "binary_mask" else rle

    def generate_records(self, image: np.ndarray) -> MaskRecords:
        """The kept masks as :class:`MaskRecords` (``_generate_masks``)."""
        orig_hw = (int(image.shape[0]), int(image.shape[1]))
        boxes, layers = crops.generate_crop_boxes(
            orig_hw, self.crop_n_layers, self.crop_overlap_ratio
        )
        data = MaskRecords.concat(
            [self._process_crop(image, box, layer, orig_hw) for box, layer in zip(boxes, layers)]
        )
        if len(boxes) > 1:
            # Duplicates across crops: prefer masks from smaller crops.
            scores = (1 / box_area(data.crop_boxes)).astype(np.float32)
            data = data.take(nms(data.boxes, scores, self.crop_nms_thresh))
        return data

    def _process_crop(self, image, crop_box, layer: int, orig_hw) -> MaskRecords:
        """As ``_process_crop``: every grid click on one crop, NMS, back to image pixels."""
        x0, y0, x1, y1 = crop_box
        crop = image[y0:y1, x0:x1]
        crop_hw = crop.shape[:2]
        self.predictor.set_image(crop)
        points = self.point_grids[layer] * np.array(crop_hw)[None, ::-1]
        step = self.points_per_batch
        data = MaskRecords.concat(
            [
                self._process_batch(points[i : i + step], crop_hw, crop_box, orig_hw)
                for i in range(0, len(points), step)
            ]
        )
        data = data.take(nms(data.boxes, data.iou_preds, self.box_nms_thresh))
        data.boxes = crops.uncrop_boxes(data.boxes, crop_box)
        data.points = crops.uncrop_points(data.points, crop_box)
        return data

    def _process_batch(self, points, crop_hw, crop_box, orig_hw) -> MaskRecords:
        """As ``_process_batch``: masks for up to ``points_per_batch`` clicks, filtered.

        Args:
          points: ``[n, 2]`` float64 clicks in crop pixels.

        Returns:
          the kept masks; boxes and points still in crop pixels.
        """
        coords = transform_coords(points[:, None, :], crop_hw, self.predictor.image_size)
        low_res, ious = self._decode(coords, None, self.multimask_output)
        n_masks = low_res.shape[1]
        low_res, ious = low_res.reshape(-1, *low_res.shape[2:]), ious.reshape(-1)
        points = np.repeat(points, n_masks, axis=0)
        coords = np.repeat(coords, n_masks, axis=0)
        if self.use_m2m:  # refine_with_m2m: the clamped low-res logits as mask prompt
            mask_input = np.clip(low_res, -LOW_RES_CLAMP, LOW_RES_CLAMP)[..., None]
            low_res, ious = (x[:, 0] for x in self._decode(coords, mask_input, False))
        masks, stability, boxes = self._upsample(low_res, crop_hw)
        keep = np.ones(len(ious), bool)
        if self.pred_iou_thresh > 0.0:
            keep &= ious > self.pred_iou_thresh
        if self.stability_score_thresh > 0.0:
            keep &= stability >= self.stability_score_thresh
        h, w = orig_hw
        keep &= ~crops.is_box_near_crop_edge(boxes, crop_box, [0, 0, w, h])
        rles = mask_to_rle(crops.uncrop_masks(masks[keep], crop_box, orig_hw))
        crop_boxes = np.tile(np.asarray(crop_box, np.int64), (len(rles), 1))
        return MaskRecords(rles, boxes[keep], ious[keep], stability[keep], points[keep], crop_boxes)

    def _decode(self, coords, mask_input, multimask_output: bool):
        """The decoder on ``[K, 1, 2]`` clicks in padded batches of ``points_per_batch``.

        Returns:
          unclamped low-res logits ``[K, M, 4g, 4g]`` and IoUs ``[K, M]`` (numpy).
        """
        step = self.points_per_batch
        labels = np.ones(coords.shape[:2], np.int32)  # every grid click is foreground
        outputs = []
        for i in range(0, len(coords), step):
            chunk = [
                None if x is None else _pad_rows(x[i : i + step], step)
                for x in (coords, labels, mask_input)
            ]
            low_res, ious = self.predictor.decode(*chunk, multimask_output=multimask_output)
            n = min(step, len(coords) - i)
            outputs.append((np.asarray(low_res)[:n], np.asarray(ious)[:n]))
        return tuple(np.concatenate(x) for x in zip(*outputs))

    def _upsample(self, low_res_nhw: np.ndarray, crop_hw):
        """Cleanup (host), then masks at the crop size, stability scores and boxes (numpy)."""
        if self.min_mask_region_area > 0:
            low_res_nhw = remove_small_regions(low_res_nhw, self.min_mask_region_area)
        n = len(low_res_nhw)
        masks, stability, boxes = _masks_and_scores(
            _pad_rows(low_res_nhw, self._mask_batch),
            size=tuple(int(s) for s in crop_hw),
            mask_threshold=float(self.mask_threshold),
            offset=float(self.stability_score_offset),
        )
        return (
            np.asarray(masks)[:n],
            np.asarray(stability)[:n],
            np.asarray(boxes)[:n].astype(np.int64),
        )


def _pad_rows(x: np.ndarray, n: int) -> np.ndarray:
    """Zero-pads the leading axis to ``n`` rows (the static batch)."""
    return np.concatenate([x, np.zeros((n - len(x), *x.shape[1:]), x.dtype)]) if len(x) < n else x
