"""`etam data`: synthesise, prepare and inspect datasets.

etam data synth --out DIR [--kinds sa1b,sav,sav_eval,davis] [--seed N]
                [--size HxW] [--count N] [--num-frames N] [--object-scale F] [--motion F]
etam data prepare sa1b|sav --source DIR --out DIR [--annotations manual,auto]
                  [--max-skipped-fraction 0.01] [--workers N] [--check-masks]
etam data inspect --source DIR --out DIR [-n N] [--seed N] [--max-frames N]
                  [--pipeline [--resolution S] [--num-frames T] [--max-objects O]]
"""

from __future__ import annotations

import argparse
import json
import logging

from etam_jax.errors import EtamError


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="etam data", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="action", required=True)
    synth = sub.add_parser("synth", help="write synthetic data in the real formats")
    synth.add_argument("--out", required=True)
    synth.add_argument(
        "--kinds",
        default="sa1b,sav,sav_eval,davis",
        help="comma-separated subset of sa1b,sav,sav_eval,davis",
    )
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument(
        "--size", help="HEIGHTxWIDTH for every kind, e.g. 480x854 (default: small, per kind)"
    )
    synth.add_argument("--count", type=int, help="images / videos per kind")
    synth.add_argument("--num-frames", type=int, help="frames per video (24 fps)")
    synth.add_argument(
        "--object-scale",
        type=float,
        help="object size factor (default 1: radii 10-22%% of the shorter side)",
    )
    synth.add_argument(
        "--motion",
        type=float,
        help="object speed factor for videos (default 1: up to 3%% of the shorter side a frame)",
    )
    prep = sub.add_parser("prepare", help="raw SA-1B / SA-V -> TFDS ArrayRecord")
    prep.add_argument("kind", choices=["sa1b", "sav"])
    prep.add_argument("--source", required=True)
    prep.add_argument("--out", required=True)
    prep.add_argument("--annotations", default="manual", help="SA-V jsons: manual or manual,auto")
    prep.add_argument("--max-skipped-fraction", type=float, default=0.01)
    prep.add_argument(
        "--workers", type=int, default=0, help="reader/checker processes (0: in this process)"
    )
    prep.add_argument(
        "--check-masks", action="store_true", help="also decode every mask while checking"
    )
    insp = sub.add_parser("inspect", help="draw examples with mask overlays to PNG")
    insp.add_argument(
        "--source",
        required=True,
        help="raw SA-1B/SA-V folder, prepared dataset, or DAVIS / SA-V val folder",
    )
    insp.add_argument("--out", required=True)
    insp.add_argument("-n", type=int, default=4)
    insp.add_argument("--seed", type=int, default=0)
    insp.add_argument("--max-frames", type=int, default=8)
    insp.add_argument(
        "--pipeline",
        action="store_true",
        help="draw training-pipeline outputs (sampled, augmented, resized)",
    )
    insp.add_argument("--resolution", type=int, default=1024, help="--pipeline: square side")
    insp.add_argument("--num-frames", type=int, default=8, help="--pipeline: clip length (SA-V)")
    insp.add_argument("--max-objects", type=int, default=3, help="--pipeline: objects per example")
    return parser


def _synth(args: argparse.Namespace) -> int:
    from data_pipelines.synthetic import KINDS, write_all

    kinds = [k for k in args.kinds.split(",") if k]
    bad = [k for k in kinds if k not in KINDS]
    if bad or not kinds:
        raise EtamError(
            f"--kinds {args.kinds!r}: expected a comma-separated subset of {','.join(KINDS)}"
        )
    size = None
    if args.size:
        parts = args.size.lower().split("x")
        if len(parts) != 2 or not all(p.isdigit() and int(p) > 0 for p in parts):
            raise EtamError(f"--size {args.size!r}: expected HEIGHTxWIDTH, e.g. 480x854")
        size = (int(parts[0]), int(parts[1]))
    if args.object_scale is not None and not 0 < args.object_scale <= 2:
        raise EtamError(f"--object-scale {args.object_scale}: expected a factor in (0, 2]")
    if args.motion is not None and not 0 <= args.motion <= 10:
        raise EtamError(f"--motion {args.motion}: expected a factor in [0, 10]")
    folders = write_all(
        args.out,
        kinds,
        args.seed,
        size,
        args.count,
        args.num_frames,
        args.object_scale,
        args.motion,
    )
    for kind, folder in folders.items():
        print(f"{kind}: {folder}")
    return 0


def _prepare(args: argparse.Namespace) -> int:
    from data_pipelines.prepare import prepare

    annotations = tuple(a for a in args.annotations.split(",") if a)
    report = prepare(args.kind, args.source, args.out, annotations, args.workers, args.check_masks)
    print(json.dumps({k: v for k, v in report.items() if k != "skipped_files"}))
    total = report["examples"] + report["skipped"]
    if total and report["skipped"] / total > args.max_skipped_fraction:
        raise EtamError(
            f"{report['skipped']} of {total} examples skipped (limit "
            f"{args.max_skipped_fraction:.2%}); see {args.out}/prepare_report.json"
        )
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from data_pipelines.clip_sampling import SamplingSpec
    from data_pipelines.inspect_data import inspect_source, inspect_vos, is_vos_layout
    from data_pipelines.transforms import AugmentSpec

    pipeline = None
    if args.pipeline:
        pipeline = (
            SamplingSpec(args.num_frames, args.max_objects),
            AugmentSpec(resolution=args.resolution),
        )
    if is_vos_layout(args.source) and not args.pipeline:
        paths = inspect_vos(args.source, args.out, args.n, args.max_frames)
    else:
        paths = inspect_source(args.source, args.out, args.n, args.seed, args.max_frames, pipeline)
    if not paths:
        raise EtamError(f"inspect: no decodable example in {args.source}")
    for path in paths:
        print(path)
    return 0


def main(argv: list[str]) -> int:
    """Entry point of `etam data`; returns the exit code."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = _parser().parse_args(argv)
    return {"synth": _synth, "prepare": _prepare, "inspect": _inspect}[args.action](args)
