"""`etam segment`: masks for prompted objects on one image (the image predictor).

    etam segment --model NAME --checkpoint PATH --image FILE --prompts PROMPTS.json
                 --out DIR [--save-logits] [--multimask]
    etam segment --model NAME --checkpoint PATH --image FILE --auto --out DIR
                 [--points-per-side N] [--pred-iou-thresh T] [--stability-score-thresh T]
                 [--crop-n-layers N] [--min-mask-region-area A] [...]

PROMPTS.json is the `etam track` format without ``"frame"``: a list of
``{"obj_id", "points", "labels"}`` and/or ``"box"`` and/or ``"mask"`` (a
binary PNG of the image size), coordinates in original pixels. Writes

- ``DIR/<obj_id>.png``: the best mask (0/255) at the image size (with
  ``--multimask`` the one of three with the highest predicted IoU);
- ``DIR/scores.json``: ``{"<obj_id>": {"scores": [...], "best": k}}``;
- with ``--multimask`` also ``DIR/<obj_id>_<k>.png`` for k = 0, 1, 2;
- with ``--save-logits`` ``DIR/<obj_id>.npy`` (and ``<obj_id>_<k>.npy``):
  float32 logits at the image size.

The model is the official image predictor's: ``build_sam2`` defaults
(``apply_postprocessing``: an unstable single mask falls back to the best of
the three). ``--auto`` instead of ``--prompts`` runs automatic mask generation
(the official ``SAM2AutomaticMaskGenerator``, its defaults unless given) and
writes ``DIR/masks.json`` (COCO RLE records with scores) and
``DIR/overlay.png``; see :mod:`etam_jax.inference.auto_segment`.
Output is written to a sibling temporary folder and renamed into place at the
end, so ``DIR`` exists only when complete.
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np
from PIL import Image

from etam_jax.errors import EtamError
from etam_jax.inference.auto_segment import (
    add_auto_arguments,
    check_auto_flags,
    generator_options,
    run_auto,
)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="etam segment", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="official model name, e.g. efficienttam_ti")
    p.add_argument(
        "--checkpoint",
        required=True,
        help=".pt file, etam weights dir, or etam train workdir / checkpoints/<step>",
    )
    p.add_argument("--image", required=True, help="the image (any format Pillow reads)")
    p.add_argument("--prompts", help="PROMPTS.json (as for `etam track`, without 'frame')")
    p.add_argument("--out", required=True, help="output folder (must not exist or be empty)")
    p.add_argument("--save-logits", action="store_true", help="also write float32 .npy logits")
    p.add_argument("--multimask", action="store_true", help="three masks per object + scores")
    p.add_argument(
        "--auto",
        action="store_true",
        help="automatic mask generation instead of --prompts",
    )
    p.add_argument("--image-size", type=int, default=None, help=argparse.SUPPRESS)
    add_auto_arguments(p)
    return p.parse_args(argv)


def read_image(path: str) -> np.ndarray:
    """The image as ``[H, W, 3]`` uint8 RGB; an `EtamError` naming the file otherwise."""
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"))
    except FileNotFoundError:
        raise EtamError(f"--image {path}: no such file") from None
    except (
        OSError,
        SyntaxError,
        ValueError,
    ) as e:  # PIL's errors for unreadable images
        raise EtamError(f"--image {path}: cannot read image ({e})") from None


def load_image_model(name: str | None, checkpoint: str, image_size: int | None = None):
    """The model as ``build_sam2(apply_postprocessing=True)`` builds it, with weights
    from any checkpoint (`convert.checkpoint_io.load_model`)."""
    from etam_jax.convert.checkpoint_io import load_model

    return load_model(name, checkpoint, image_size, apply_postprocessing=True)


def write_object(root: str, obj_id: int, logits: np.ndarray, scores: np.ndarray, args) -> int:
    """Writes one object's PNG(s) (and logits); returns the index of the best mask."""
    best = int(np.argmax(scores))  # first maximum, as torch.argmax
    outputs = {f"{obj_id}": logits[best]}
    if args.multimask:
        outputs.update({f"{obj_id}_{k}": mask for k, mask in enumerate(logits)})
    for stem, mask_logits in outputs.items():
        png = np.where(mask_logits > 0, 255, 0).astype(np.uint8)
        Image.fromarray(png).save(os.path.join(root, f"{stem}.png"))
        if args.save_logits:
            np.save(os.path.join(root, f"{stem}.npy"), mask_logits.astype(np.float32))
    return best


def main_auto(args: argparse.Namespace) -> int:
    """`etam segment --auto`: cheap checks, then the model, then the generator."""
    from etam_jax.inference.output_dir import check_out_dir
    from etam_jax.models.configs import get_model_config

    get_model_config(args.model, args.image_size)  # a bad --model fails here
    options = generator_options(args)
    image = read_image(args.image)
    check_out_dir(args.out)
    check_checkpoint(args.checkpoint)
    return run_auto(
        args.out,
        image,
        load_image_model(args.model, args.checkpoint, args.image_size),
        options,
    )


def check_checkpoint(path: str) -> None:
    if not os.path.exists(path):
        raise EtamError(f"--checkpoint {path}: no such file or directory")


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.auto == bool(args.prompts):
        raise EtamError("give exactly one of --prompts PROMPTS.json and --auto")
    if args.auto:
        return main_auto(args)
    check_auto_flags(args)
    # Cheap checks first, so bad input fails before the model is loaded.
    from etam_jax.inference.image_predictor import ImagePredictor, ObjectPrompt
    from etam_jax.inference.image_transforms import mask_input_from_binary
    from etam_jax.inference.output_dir import AtomicOutputDir, check_out_dir
    from etam_jax.inference.prompts_io import load_prompts
    from etam_jax.models.configs import get_model_config

    get_model_config(args.model, args.image_size)  # a bad --model fails here
    image = read_image(args.image)
    prompts = load_prompts(args.prompts, image.shape[:2])
    check_out_dir(args.out)
    check_checkpoint(args.checkpoint)

    model = load_image_model(args.model, args.checkpoint, args.image_size)
    predictor = ImagePredictor(model)
    predictor.set_image(image)
    low_res = predictor.mask_input_size
    objects = [
        ObjectPrompt(
            p.points,
            p.labels,
            p.box,
            None if p.mask is None else mask_input_from_binary(p.mask, model.image_size, low_res),
        )
        for p in prompts
    ]
    results = predictor.predict_objects(
        objects, multimask_output=args.multimask, return_logits=True
    )
    scores = {}
    with AtomicOutputDir(args.out) as out:
        for p, (logits, ious, _) in zip(prompts, results):
            best = write_object(out.tmp, p.obj_id, logits, ious, args)
            scores[str(p.obj_id)] = {"scores": [float(s) for s in ious], "best": best}
        with open(os.path.join(out.tmp, "scores.json"), "w") as f:
            json.dump(scores, f, indent=1)
        out.commit()
    print(f"etam segment: wrote {len(prompts)} object(s) to {args.out}")
    return 0
