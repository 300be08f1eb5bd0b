"""`etam eval`: semi-supervised VOS evaluation (J&F) on a DAVIS- or SA-V-layout folder.

    etam eval --model NAME --checkpoint PATH --data DIR --out DIR
              [--split val] [--max-videos N] [--vis N]

Prints the J&F, J and F means and writes into OUT: ``summary.json``
(``{"J&F", "J", "F", "videos", "objects"}``, fractions in [0, 1]),
``per_video.csv``, ``per_object.csv``, the predicted masks under ``masks/``
in the official layout, and with ``--vis N`` overlays of the N worst videos
under ``vis/``. OUT appears only when complete (written as ``OUT.partial-<pid>``
and renamed); an existing non-empty OUT is refused before any work.
"""

from __future__ import annotations

import argparse
import os

from etam_jax.errors import EtamError


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="etam eval", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="official model name, e.g. efficienttam_ti")
    p.add_argument(
        "--checkpoint",
        required=True,
        help=".pt file, etam weights dir, or etam train workdir / checkpoints/<step>",
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
    return p.parse_args(argv)


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
    from etam_jax.evaluation.vos_eval import evaluate, find_videos
    from etam_jax.inference.output_dir import AtomicOutputDir, check_out_dir
    from etam_jax.models.configs import get_model_config

    get_model_config(args.model, args.image_size)
    find_videos(args.data, args.split, args.max_videos)
    check_out_dir(args.out)
    if not os.path.exists(args.checkpoint):
        raise EtamError(f"--checkpoint {args.checkpoint}: no such file or directory")
    with AtomicOutputDir(args.out) as out:
        summary = evaluate(
            args.model,
            args.checkpoint,
            args.data,
            out.tmp,
            args.image_size,
            split=args.split,
            progress=not args.no_progress,
            max_videos=args.max_videos,
            vis=args.vis,
        )
        out.commit()
    print(f"etam eval: {format_summary(summary)}")
    print(
        f"etam eval: wrote {args.out}/summary.json, per_video.csv, per_object.csv, masks/"
        + (", vis/" if args.vis else "")
    )
    return 0
