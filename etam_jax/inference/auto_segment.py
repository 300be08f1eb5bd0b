"""`etam segment --auto`: automatic mask generation for one image, written as COCO RLE.

Writes ``DIR/masks.json`` -- the official ``SAM2AutomaticMaskGenerator``
records with ``output_mode="coco_rle"``: a list of ``{"segmentation": {"size":
[H, W], "counts": str}, "area", "bbox": [x, y, w, h], "predicted_iou",
"stability_score", "point_coords": [[x, y]], "crop_box": [x, y, w, h]}`` -- and
``DIR/overlay.png`` (the masks blended over the image, largest first, each
in a palette colour with its contour).
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np
from PIL import Image

from etam_jax.errors import EtamError

# flag -> (MaskGenerator argument, type, official default, lowest allowed, highest allowed)
AUTO_OPTIONS = {
    "--points-per-side": ("points_per_side", int, 32, 1, None),
    "--points-per-batch": ("points_per_batch", int, 64, 1, None),
    "--pred-iou-thresh": ("pred_iou_thresh", float, 0.8, 0.0, 1.0),
    "--stability-score-thresh": ("stability_score_thresh", float, 0.95, 0.0, 1.0),
    "--box-nms-thresh": ("box_nms_thresh", float, 0.7, 0.0, 1.0),
    "--crop-n-layers": ("crop_n_layers", int, 0, 0, None),
    "--min-mask-region-area": ("min_mask_region_area", int, 0, 0, None),
}


def add_auto_arguments(parser: argparse.ArgumentParser) -> None:
    """The generator options (default None: given only with --auto)."""
    group = parser.add_argument_group("--auto options (official defaults)")
    for flag, (_, kind, default, _, _) in AUTO_OPTIONS.items():
        group.add_argument(flag, type=kind, default=None, help=f"default {default}")
    group.add_argument("--use-m2m", action="store_true", help="refine each mask once with itself")


def generator_options(args: argparse.Namespace) -> dict:
    """MaskGenerator keyword arguments from the flags; an `EtamError` for values out of range."""
    options = {"use_m2m": args.use_m2m, "output_mode": "coco_rle"}
    for flag, (name, _, default, low, high) in AUTO_OPTIONS.items():
        value = getattr(args, name)
        value = default if value is None else value
        if value < low or (high is not None and value > high):
            allowed = f">= {low}" if high is None else f"in [{low}, {high}]"
            raise EtamError(f"{flag}: must be {allowed}, found {value}")
        options[name] = value
    return options


def check_auto_flags(args: argparse.Namespace) -> None:
    """Refuses generator options without --auto (they would be silently ignored)."""
    given = [f for f, (name, *_) in AUTO_OPTIONS.items() if getattr(args, name) is not None]
    given += ["--use-m2m"] if args.use_m2m else []
    if given:
        raise EtamError(f"{', '.join(given)}: only with --auto (found with --prompts)")


def write_auto(out_dir: str, image: np.ndarray, records: list[dict]) -> None:
    """``masks.json`` and ``overlay.png`` into ``out_dir``."""
    from pycocotools import mask as mask_utils

    from etam_jax.inference.overlay import overlay

    with open(os.path.join(out_dir, "masks.json"), "w") as f:
        json.dump(records, f)
    # Largest mask first, so smaller masks are drawn over it and stay visible.
    records = sorted(records, key=lambda r: -r["area"])
    rles = [dict(r["segmentation"], counts=r["segmentation"]["counts"].encode()) for r in records]
    masks = {k: mask_utils.decode(rle).astype(bool) for k, rle in enumerate(rles)}
    Image.fromarray(overlay(image, masks)).save(os.path.join(out_dir, "overlay.png"))


def run_auto(out: str, image: np.ndarray, model, options: dict) -> int:
    """Generates the masks (``options`` from :func:`generator_options`), writes them atomically."""
    from etam_jax.inference.mask_generator import MaskGenerator
    from etam_jax.inference.output_dir import AtomicOutputDir

    records = MaskGenerator(model, **options).generate(image)
    with AtomicOutputDir(out) as tmp:
        write_auto(tmp.tmp, image, records)
        tmp.commit()
    print(f"etam segment --auto: wrote {len(records)} mask(s) to {out}")
    return 0
