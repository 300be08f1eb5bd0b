"""The sweep's eval stage: J&F of a point's trained weights with the point's pooling.

    python -m etam_jax.sweep.evaluate --model-config POINT/model_config.json \
        --checkpoint POINT/train/checkpoints --data DAVIS --out POINT/eval

`etam eval` builds a model from its official name only, so it cannot run the
pooling variants that have none (window 4, or no correction); and it reads
``.pt`` files and etam weights directories, not training checkpoints. This
stage builds the model config the point trained (``model_config.json``,
:mod:`etam_jax.sweep.training_config`), takes the parameters of the latest
step of a training run's ``checkpoints/`` (or a ``.pt`` / weights directory),
and scores it with the evaluation library (``vos_eval.evaluate_model``), so
``OUT`` is laid out as `etam eval` writes it (``summary.json`` with ``J&F``...).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp
from flax import nnx
from flax.traverse_util import flatten_dict, unflatten_dict

from etam_jax.convert.checkpoint_io import (
    META_FILE,
    WEIGHTS,
    load_orbax,
    load_torch_arrays,
    read_orbax_meta,
    read_pt,
)
from etam_jax.errors import EtamError
from etam_jax.models.build import abstract_model
from etam_jax.sweep.bench import stage_model_config
from etam_jax.sweep.training_config import latest_step_dir

STATE_ITEM = "state"  # the TrainState item of a training checkpoint step (training/checkpoints.py)


def train_params(checkpoints: Path) -> dict:
    """The ``params`` of the latest TrainState under ``checkpoints``, as a nested dict of numpy arrays.

    Only that subtree is read (Orbax partial restore: no optimizer state);
    nnx's ``{"value": array}`` wrapping of each variable is removed.
    """
    path = (latest_step_dir(checkpoints) / STATE_ITEM).absolute()
    with ocp.PyTreeCheckpointer() as checkpointer:
        tree = checkpointer.metadata(path).item_metadata.tree
        if "params" not in tree:
            raise EtamError(f"{path}: not a TrainState checkpoint (top-level keys {sorted(tree)})")
        target = jax.tree.map(lambda m: np.zeros(m.shape, m.dtype), tree["params"])
        restore = jax.tree.map(lambda m: ocp.RestoreArgs(restore_type=np.ndarray), tree["params"])
        args = ocp.args.PyTreeRestore(
            item={"params": target}, restore_args={"params": restore}, partial_restore=True
        )
        params = checkpointer.restore(path, args=args)["params"]
    is_variable = lambda x: isinstance(x, dict) and set(x) == {"value"}
    return jax.tree.map(lambda x: x["value"] if is_variable(x) else x, params, is_leaf=is_variable)


def load_point_weights(model: nnx.Module, checkpoint: Path) -> None:
    """Fills ``model``'s weights from a ``.pt`` file, an etam weights dir or training ``checkpoints/``."""
    if checkpoint.is_file():
        load_torch_arrays(model, read_pt(checkpoint), source=str(checkpoint))
    elif (
        checkpoint / META_FILE
    ).is_file():  # pooling has no weights: any model name of the trunk fits
        load_orbax(model, read_orbax_meta(checkpoint)["model"], checkpoint)
    else:
        fill_weights(model, train_params(checkpoint), str(checkpoint))


def fill_weights(model: nnx.Module, params: dict, source: str) -> None:
    """Sets every weight of ``model`` from the nested dict ``params`` (list indices as strings or ints)."""
    state = nnx.state(model, WEIGHTS)
    want = flatten_dict(nnx.to_pure_dict(state))
    got = {tuple(map(str, k)): v for k, v in flatten_dict(params).items()}
    key = lambda path: tuple(map(str, path))
    missing = [".".join(key(k)) for k in want if key(k) not in got]
    wrong = [
        ".".join(key(k)) for k, v in want.items() if key(k) in got and got[key(k)].shape != v.shape
    ]
    if missing or wrong:
        raise EtamError(
            f"{source}: weights do not fit the model: missing {missing[:4]}, other shape {wrong[:4]}"
        )
    nnx.replace_by_pure_dict(state, unflatten_dict({k: got[key(k)] for k in want}))
    nnx.update(model, state)


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
    load_point_weights(model, Path(checkpoint))
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
