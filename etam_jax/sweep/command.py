"""`etam sweep`: run an ablation sweep here, or print the launch commands of its training runs.

    etam sweep SWEEP.py --workdir DIR [--variant full|local|ci] [--data DIR] [--only a,b]
    etam sweep SWEEP.py --workdir DIR --emit-launch tpu --tpu-name NAME [--zone Z] [...]
    etam sweep SWEEP.py --workdir DIR --emit-launch local [...]

Running: every point without ``DIR/<point>/result.json`` goes through
train -> eval -> bench (:mod:`etam_jax.sweep.runner`); then
``DIR/results.csv``, ``DIR/results.md`` and ``DIR/results.png`` are written
from every finished point of the sweep. Emitting: one training command per
point is printed (nothing runs); run `etam sweep` without ``--emit-launch``
on the same workdir afterwards to evaluate, bench and tabulate (training
resumes from its last checkpoint, so finished runs end at once).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from etam_jax.errors import EtamError
from etam_jax.sweep.definition import Sweep, load_sweep, select_points
from etam_jax.sweep.files import read_json
from etam_jax.sweep.launch import LAUNCHERS, TpuTarget, launch_lines
from etam_jax.sweep.results import write_results
from etam_jax.sweep.runner import RESULT_FILE, run_sweep


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="etam sweep", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "sweep",
        help="sweep file defining get_sweep(variant), e.g. experiments/sweeps/memory_pooling.py",
    )
    p.add_argument("--workdir", required=True, help="one folder per point, and the results tables")
    p.add_argument("--variant", default="full", help="argument of get_sweep (default: full)")
    p.add_argument(
        "--data", help="data root substituted for {data} in the sweep (sa1b/, sav/, davis/)"
    )
    p.add_argument("--only", help="comma-separated point names (default: all)")
    p.add_argument(
        "--emit-launch", choices=sorted(LAUNCHERS), help="print launch commands instead of running"
    )
    p.add_argument("--tpu-name", help="--emit-launch tpu: the TPU VM (pod) name")
    p.add_argument("--zone", help="--emit-launch tpu: its zone")
    p.add_argument("--accelerator-type", help="--emit-launch tpu: v5p-32, v4-8, ...")
    p.add_argument(
        "--launch-arg",
        action="append",
        default=[],
        help="--emit-launch tpu: extra launcher flag, e.g. --launch-arg=--spot (repeatable)",
    )
    return p.parse_args(argv)


def collect_rows(sweep: Sweep, workdir: Path) -> list[dict]:
    """The rows of every point of ``sweep`` with a ``result.json``, in sweep order."""
    paths = [workdir / p.name / RESULT_FILE for p in sweep.points]
    return [read_json(path) for path in paths if path.is_file()]


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    sweep = load_sweep(args.sweep, args.variant)
    points = select_points(sweep, args.only)
    if args.emit_launch:
        url = "://" in args.workdir  # a bucket every TPU host sees: kept as given
        workdir = args.workdir if url else str(Path(args.workdir).absolute())
        tpu = TpuTarget(args.tpu_name, args.zone, args.accelerator_type, tuple(args.launch_arg))
        for line in launch_lines(args.emit_launch, points, workdir, args.data, tpu):
            print(line)
        return 0
    workdir = Path(args.workdir).absolute()
    failed = run_sweep(sweep, points, workdir, args.data)
    rows = collect_rows(sweep, workdir)
    if rows:
        for path in write_results(rows, workdir):
            print(f"wrote {path}")
    if failed:
        raise EtamError(
            f"{len(failed)} point(s) failed: {', '.join(failed)} (logs in {workdir}/<point>/logs/)"
        )
    return 0
