"""The sweep's eval stage: J&F of a point's trained weights with the point's pooling.

    python -m etam_jax.sweep.evaluate --model-config POINT/model_config.json \
        --checkpoint POINT/train/checkpoints --data DAVIS --out POINT/eval

`etam eval` builds a model from its official name (or the config a training
checkpoint recorded); the pooling variants that have no name (window 4, or no
correction) come from the point's own ``model_config.json``
(:mod:`etam_jax.sweep.training_config`). This stage builds that model, loads
any checkpoint into it (`convert.checkpoint_io.load_weights`: the latest step
of a training run's ``checkpoints/``, a ``.pt`` or a weights directory),
and scores it with the evaluation library (``vos_eval.evaluate_model``), so
``OUT`` is laid out as `etam eval` writes it (``summary.json`` with ``J&F``...).
"""

from __future__ import annotations

import argparse
import sys

from etam_jax.convert.checkpoint_io import load_weights
from etam_jax.errors import EtamError
from etam_jax.models.build import abstract_model
from etam_jax.sweep.bench import stage_model_config


def evaluate_point(
    model_config: str, checkpoint: str, data: str, out: str, max_videos: int | None
) -> dict:
    """Builds the point's model, loads its weights and writes the evaluation into ``out``."""
    from etam_jax.evaluation.vos_eval import (
        evaluate_model,  # heavy: after the flags are parsed
    )
    from etam_jax.inference.output_dir import AtomicOutputDir, check_out_dir

    cfg = stage_model_config(model_config)
    model = abstract_model(cfg, apply_postprocessing=True)  # as `etam eval` builds it
    load_weights(model, None, checkpoint)  # pooling has no weights: any trunk name fits
    check_out_dir(out)
    # OUT appears complete or not at all, as with `etam eval`.
    with AtomicOutputDir(out) as atomic:
        summary = evaluate_model(model, data, atomic.tmp, max_videos=max_videos, progress=False)
        atomic.commit()
    return summary


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="python -m etam_jax.sweep.evaluate", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--model-config", required=True, help="JSON model config (model_config.json)")
    p.add_argument(
        "--checkpoint", required=True, help="training checkpoints/ folder, .pt or weights dir"
    )
    p.add_argument("--data", required=True, help="DAVIS-layout folder")
    p.add_argument("--out", required=True, help="output folder (must not exist or be empty)")
    p.add_argument("--max-videos", type=int, default=None)
    args = p.parse_args(argv)
    try:
        summary = evaluate_point(
            args.model_config, args.checkpoint, args.data, args.out, args.max_videos
        )
    except EtamError as e:
        print(f"sweep evaluate: error: {e}", file=sys.stderr)
        return 1
    print(f"sweep evaluate: J&F {summary['J&F']:.4f} (J {summary['J']:.4f}, F {summary['F']:.4f})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
