"""The official EfficientTAM for parity tests: `etam_jax.bench.official_model`, plus torch helpers."""

from __future__ import annotations

import numpy as np
import torch

from etam_jax.bench.official_model import (  # noqa: F401  (the tests' names for them)
    CONFIG_DIR,
    build_official,
    copy_weights,
    official_config,
    randomize_,
    relative_error,
    state_dict_numpy,
)


def to_torch(x) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(np.asarray(x)))
