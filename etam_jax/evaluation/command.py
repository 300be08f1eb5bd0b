"""`etam eval`: semi-supervised VOS evaluation (J&F) on a DAVIS- or SA-V-layout folder.

    etam eval --model NAME --checkpoint PATH --data DIR --out DIR
              [--split val] [--max-videos N] [--vis N]
    etam eval --baseline copy-first-mask --data DIR --out DIR [...]

Prints the J&F, J and F means and writes into OUT: ``summary.json``
(``{"J&F", "J", "F", "videos", "objects"}``, fractions in [0, 1]),
``per_video.csv``, ``per_object.csv``, the predicted masks under ``masks/``
in the official layout, and with ``--vis N`` overlays of the N worst videos
under ``vis/``. OUT appears only when complete (written as ``OUT.partial-<pid>``
and renamed); an existing non-empty OUT is refused before any work.
``--baseline copy-first-mask`` scores, in place of a model, each object's
first annotated mask copied to every later frame (what a tracker must beat).
"""

from __future__ import annotations

import argparse
import os

from etam_jax.errors import EtamError

BASELINES = ("copy-first-mask",)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="etam eval", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", help="official model name, e.g. efficienttam_ti")
    p.add_argument(
        "--checkpoint",
        help=".pt file, etam weights dir, or etam train workdir / checkpoints/<step>",
    )
    p.add_argument(
        "--baseline",
        choices=BASELINES,
        help="score a baseline instead of a model (no --model / --checkpoint)",
    )
    p.add_argument(
        "--data", required=True, help="DAVIS (JPEGImages/<res>/...) or SA-V val/test folder"
    )
    p.add_argument("--out", required=True, help="output folder (must not exist or be empty)")
    p.add_argument(
        "--split",
        default="val",
        help="list file to read: ImageSets/2017/SPLIT.txt or sav_SPLIT.txt",
    )
    p.add_argument("--max-videos", type=int, default=None, help="evaluate only the first N videos")
    p.add_argument("--vis", type=int, default=0, metavar="N", help="overlays of the N worst videos")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--image-size", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.baseline and (args.model or args.checkpoint):
        p.error("--baseline replaces --model and --checkpoint; give one or the other")
    if not args.baseline and not (args.model and args.checkpoint):
        p.error("the following arguments are required: --model, --checkpoint (or --baseline)")
    return args


def format_summary(summary: dict) -> str:
    """One line: ``J&F 0.812  J 0.790  F 0.834  (30 videos, 59 objects)``."""
    return (
        f"J&F {summary['J&F']:.3f}  J {summary['J']:.3f}  F {summary['F']:.3f}  "
        f"({summary['videos']} videos, {summary['objects']} objects)"
    )


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.vis < 0 or (args.max_videos is not None and args.max_videos < 1):
        raise EtamError("--vis must be >= 0 and --max-videos >= 1")
    # Cheap checks first, so bad input fails before the model is loaded.
    from etam_jax.evaluation.vos_eval import evaluate, evaluate_videos, find_videos
    from etam_jax.inference.output_dir import AtomicOutputDir, check_out_dir
    from etam_jax.models.configs import get_model_config

    if args.model:
        get_model_config(args.model, args.image_size)
    videos = find_videos(args.data, args.split, args.max_videos)
    check_out_dir(args.out)
    if args.checkpoint and not os.path.exists(args.checkpoint):
        raise EtamError(f"--checkpoint {args.checkpoint}: no such file or directory")
    options = dict(progress=not args.no_progress, vis=args.vis)
    with AtomicOutputDir(args.out) as out:
        if args.baseline:
            from etam_jax.evaluation import copy_first_mask

            summary = evaluate_videos(videos, copy_first_mask.predict, out.tmp, **options)
        else:
            summary = evaluate(
                args.model,
                args.checkpoint,
                args.data,
                out.tmp,
                args.image_size,
                split=args.split,
                max_videos=args.max_videos,
                **options,
            )
        out.commit()
    print(f"etam eval: {format_summary(summary)}")
    print(
        f"etam eval: wrote {args.out}/summary.json, per_video.csv, per_object.csv, masks/"
        + (", vis/" if args.vis else "")
    )
    return 0
