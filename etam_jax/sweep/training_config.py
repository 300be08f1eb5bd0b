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

from etam_jax.errors import EtamError
from etam_jax.sweep.definition import Point, override_flags
from etam_jax.sweep.files import write_text
from etam_jax.training.config_loader import load_config

MODEL_CONFIG_FILE = "model_config.json"


def point_model_config(point: Point) -> ml_collections.ConfigDict:
    """The ``model`` section of ``point``'s training config after its ``model.*`` overrides."""
    model_overrides = {k: v for k, v in point.overrides.items() if k.startswith("model.")}
    return load_config(point.config, override_flags(model_overrides, None)).model


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
