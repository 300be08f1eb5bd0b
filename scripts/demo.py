"""The README demo: train a small EfficientTAM on generated data and show that it learns.

1. ``etam train --config experiments/configs/demo.py`` with no data paths: the
   config generates its data (``etam data synth``'s SA-1B-style image shards and
   SA-V-style clips, and held-out DAVIS-layout videos, in the real file formats)
   under ``OUT/run/generated_data``; then Grain pipelines
   interleaving images and clips, jitted sharded steps, Orbax checkpoints,
   metrics.jsonl and TensorBoard under ``OUT/run``; validation J&F on the
   held-out videos before training and at the end.
3. ``etam eval --baseline copy-first-mask`` on the same held-out videos: what
   copying each first-frame mask to every frame scores (a tracker must beat it).
4. Prints the validation J&F before and after beside the baseline, and writes
   ``OUT/summary.json`` and ``OUT/curves.png`` (losses and validation J&F by step).

    python scripts/demo.py --out demo_out [--steps N]

Running it again with the same ``--out`` resumes the run from its last checkpoint
(use ``--fresh`` to start over).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from etam_jax.training.run_plot import plot_run  # noqa: E402


def run(*args: str) -> None:
    print("$", " ".join(args), flush=True)
    subprocess.run(args, check=True)


def validation_scores(workdir: Path) -> list[tuple[int, float]]:
    """``(step, val_J&F)`` rows of the run's metrics.jsonl."""
    rows = [
        json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines() if line
    ]
    return [(r["step"], r["val_J&F"]) for r in rows if r.get("val_J&F") is not None]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("demo_out"))
    p.add_argument(
        "--steps", type=int, default=None, help="training steps (default: the demo config's)"
    )
    p.add_argument("--fresh", action="store_true", help="delete OUT first")
    args = p.parse_args()
    if args.fresh:
        shutil.rmtree(args.out, ignore_errors=True)
    etam = [sys.executable, "-m", "etam_jax.cli"]
    start = time.time()
    workdir = args.out / "run"
    # No data paths: the demo config generates its data under RUN/generated_data.
    train = [*etam, "train", "--config", "experiments/configs/demo.py", "--workdir", str(workdir)]
    if args.steps:
        train += [
            f"--config.train.total_steps={args.steps}",  # the lr schedule follows
            f"--config.eval.every_steps={args.steps}",
        ]
    run(*train)
    baseline_dir = args.out / "copy_first_mask"
    if not (baseline_dir / "summary.json").exists():
        shutil.rmtree(baseline_dir, ignore_errors=True)
        baseline = [
            "eval",
            "--baseline",
            "copy-first-mask",
            "--data",
            str(workdir / "generated_data" / "val" / "davis"),
        ]
        run(*etam, *baseline, "--out", str(baseline_dir), "--no-progress")
    copy_first = json.loads((baseline_dir / "summary.json").read_text())["J&F"]
    scores = validation_scores(workdir)
    curves = plot_run(workdir / "metrics.jsonl", args.out / "curves.png", baseline=copy_first)
    summary = {
        "val_J&F_before": scores[0][1] if scores else None,
        "val_J&F_after": scores[-1][1] if scores else None,
        "copy_first_mask_J&F": copy_first,
        "val_J&F_by_step": scores,
        "workdir": str(workdir),
        "curves_png": str(curves),
        "seconds": round(time.time() - start, 1),
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))
    print(f"TensorBoard: tensorboard --logdir {workdir / 'tb'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
