"""Building an EfficientTAM by official name and counting its parameters."""

from __future__ import annotations

import contextlib
import math

import jax
import ml_collections
import numpy as np
from flax import nnx

from etam_jax.models.configs import get_model_config
from etam_jax.models.efficienttam import EfficientTAM


def _sharding_context():
    """Flax 0.12 shards annotated variables eagerly and then needs a mesh;
    without an active one we build unsharded."""
    if jax.sharding.get_abstract_mesh().empty:
        return nnx.use_eager_sharding(False)
    return contextlib.nullcontext()


def build_model(
    name_or_cfg: str | ml_collections.ConfigDict,
    *,
    rngs: nnx.Rngs | None = None,
    image_size: int | None = None,
    apply_postprocessing: bool = False,
) -> EfficientTAM:
    """An EfficientTAM with freshly initialised parameters.

    Args:
      name_or_cfg: an official model name (``efficienttam_ti``, ...) or a
        config from ``get_model_config``.
      rngs: initialisation randomness (default ``nnx.Rngs(0)``).
      image_size: override of the input resolution (names only).
      apply_postprocessing: the official predictors' mask-decoder fallback
        (see :class:`EfficientTAM`).
    """
    cfg = get_model_config(name_or_cfg, image_size) if isinstance(name_or_cfg, str) else name_or_cfg
    with _sharding_context():
        return EfficientTAM(
            cfg, rngs=rngs or nnx.Rngs(0), apply_postprocessing=apply_postprocessing
        )


def abstract_model(
    name_or_cfg: str | ml_collections.ConfigDict,
    *,
    image_size: int | None = None,
    apply_postprocessing: bool = False,
) -> EfficientTAM:
    """The model with ``ShapeDtypeStruct`` leaves: shapes and names, no compute."""
    return nnx.eval_shape(
        lambda: build_model(
            name_or_cfg,
            image_size=image_size,
            apply_postprocessing=apply_postprocessing,
        )
    )


def empty_model(
    name_or_cfg: str | ml_collections.ConfigDict,
    *,
    image_size: int | None = None,
    apply_postprocessing: bool = False,
) -> EfficientTAM:
    """The model with every variable zero: a fast target for loading weights.

    Eager random initialisation compiles one small kernel per parameter shape
    (about a minute on a small CPU); this traces the model once instead.
    """
    model = abstract_model(
        name_or_cfg, image_size=image_size, apply_postprocessing=apply_postprocessing
    )
    graphdef, state = nnx.split(model)
    state = jax.tree.map(lambda leaf: np.zeros(leaf.shape, leaf.dtype), state)
    return nnx.merge(graphdef, state)


def count_params(model: nnx.Module) -> int:
    """Number of trainable scalars (``nnx.Param`` only; buffers excluded)."""
    state = nnx.state(model, nnx.Param)
    return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(state))
