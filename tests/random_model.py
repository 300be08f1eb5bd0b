"""A model with random weights, fast: no eager initialisation (which compiles per shape, slowly)."""

import jax
import numpy as np
from flax import nnx

from etam_jax.models.build import abstract_model


def random_model(
    name: str, image_size: int, seed: int = 0, scale: float = 0.05, apply_postprocessing=False
) -> nnx.Module:
    """Model `name` at `image_size` with every variable ~ N(0, scale^2) (numpy, seeded)."""
    model = abstract_model(name, image_size=image_size, apply_postprocessing=apply_postprocessing)
    graphdef, state = nnx.split(model)
    rng = np.random.default_rng(seed)
    state = jax.tree.map(lambda x: (scale * rng.standard_normal(x.shape)).astype(x.dtype), state)
    return nnx.merge(graphdef, state)
