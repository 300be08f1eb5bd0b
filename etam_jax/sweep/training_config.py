"""A point's model config, resolved as `etam train` resolves it: eval and bench build this model.

The eval and bench stages must build exactly the model the point trained (a
config may shrink the official architecture, as ``experiments/configs/demo.py``
does), so the runner loads the point's config file with its ``model.*``
overrides through `etam train`'s own loader
(:func:`etam_jax.training.config_loader.load_config`) and writes the ``model``
section to ``<point>/model_config.json`` for the stages.
"""

from __future__ import annotations

import json
from pathlib import Path

import ml_collections

from etam_jax.convert.checkpoint_io import TRAIN_SUBDIR, training_step_dir
from etam_jax.errors import EtamError
from etam_jax.sweep.definition import Point, override_flags
from etam_jax.sweep.files import write_text
from etam_jax.training.config_loader import load_config

MODEL_CONFIG_FILE = "model_config.json"


def point_config(point: Point, sections: tuple[str, ...]) -> ml_collections.ConfigDict:
    """``point``'s training config after its overrides of ``sections`` (the others as in the file;
    data paths hold ``{data}`` and need not be resolved to read the model or the schedule)."""
    chosen = {k: v for k, v in point.overrides.items() if k.split(".")[0] in sections}
    return load_config(point.config, override_flags(chosen, None))


def point_model_config(point: Point) -> ml_collections.ConfigDict:
    """The ``model`` section of ``point``'s training config after its overrides."""
    return point_config(point, ("model",)).model


def check_trained(point: Point, train_dir: Path) -> int:
    """The final step of ``point``'s run in ``train_dir``; EtamError if it stopped early.

    `etam train` exits 0 after a preemption too (it saves and stops), so the
    runner checks that the latest checkpoint is at ``train.total_steps``.
    """
    total = point_config(point, ("train",)).train.total_steps
    step_dir = training_step_dir(train_dir / TRAIN_SUBDIR)
    if step_dir is None:
        raise EtamError(f"{train_dir / TRAIN_SUBDIR}: no training checkpoint")
    step = int(step_dir.name)
    if step != total:
        raise EtamError(
            f"{train_dir}: training stopped at step {step} of {total} (preempted?); run again to resume"
        )
    return step


def write_model_config(point: Point, point_dir: Path) -> Path:
    """Writes ``point_dir/model_config.json``; returns its path."""
    path = point_dir / MODEL_CONFIG_FILE
    write_text(path, point_model_config(point).to_json(indent=1) + "\n")
    return path


def read_model_config(path: str | Path) -> ml_collections.ConfigDict:
    """A model config written by :func:`write_model_config`."""
    try:
        return ml_collections.ConfigDict(json.loads(Path(path).read_text()))
    except (OSError, json.JSONDecodeError) as e:
        raise EtamError(f"{path}: cannot read the model config ({type(e).__name__}: {e})") from e
