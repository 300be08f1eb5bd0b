"""`etam export`: the tracker's steps as serialized StableHLO, for serving.

    etam export --model NAME --checkpoint PATH --out DIR
                [--num-objects B] [--num-points N] [--image-size S] [--platforms cpu,cuda,tpu]

Writes ``DIR/{encode_image,prompt_points,commit,propagate}.stablehlo``
(``jax.export`` serializations; load with ``jax.export.deserialize``),
``DIR/params.npz`` (the weights, passed as the programs' first arguments)
and ``DIR/signatures.json`` (model, sizes, and every function's inputs and
outputs: name, shape, dtype). See ``export/stablehlo.py``. ``DIR`` appears
only when complete.
"""

from __future__ import annotations

import argparse
import os

from etam_jax.errors import EtamError
from etam_jax.inference.output_dir import AtomicOutputDir, check_out_dir

PLATFORMS = ("cpu", "cuda", "rocm", "tpu")


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="etam export", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="official model name, e.g. efficienttam_ti")
    p.add_argument(
        "--checkpoint",
        required=True,
        help=".pt file, etam weights dir, or etam train workdir / checkpoints/<step>",
    )
    p.add_argument("--out", required=True, help="output folder (must not exist or be empty)")
    p.add_argument("--num-objects", type=int, default=1, help="objects tracked together (B)")
    p.add_argument("--num-points", type=int, default=1, help="clicks per prompt_points call")
    p.add_argument(
        "--image-size", type=int, default=None, help="input resolution (default: model's)"
    )
    p.add_argument(
        "--platforms", default=None, help=f"comma list of {PLATFORMS} (default: current)"
    )
    return p.parse_args(argv)


def check_args(args: argparse.Namespace) -> tuple[str, ...] | None:
    """Fails on bad flags before the model is loaded; returns the platforms."""
    from etam_jax.models.configs import get_model_config

    get_model_config(args.model, args.image_size)  # unknown model / bad size
    for flag in ("num_objects", "num_points"):
        if getattr(args, flag) < 1:
            raise EtamError(
                f"--{flag.replace('_', '-')} must be at least 1, got {getattr(args, flag)}"
            )
    if not os.path.exists(args.checkpoint):
        raise EtamError(f"--checkpoint {args.checkpoint}: no such file or directory")
    check_out_dir(args.out)
    if args.platforms is None:
        return None
    platforms = tuple(p.strip() for p in args.platforms.split(","))
    unknown = [p for p in platforms if p not in PLATFORMS]
    if unknown:
        raise EtamError(f"--platforms: unknown {unknown}; expected some of {PLATFORMS}")
    return platforms


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    platforms = check_args(args)

    from etam_jax.export.stablehlo import export_tracker
    from etam_jax.inference.video_predictor import load_video_model

    model = load_video_model(args.model, args.checkpoint, args.image_size)
    with AtomicOutputDir(args.out) as out:
        sig = export_tracker(model, args.model, out.tmp, num_objects=args.num_objects,
                             num_points=args.num_points, platforms=platforms)  # fmt: skip
        out.commit()
    names = ", ".join(sig["functions"])
    print(f"etam export: wrote {names} ({'/'.join(sig['platforms'])}) and weights to {args.out}")
    return 0
