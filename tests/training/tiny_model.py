"""A reduced EfficientTAM for train-step tests: 64 px, 2 trunk blocks, 1 memory layer.

Compile time of the train step grows with the number of HLO ops, not with the
widths, so the model keeps its real widths and loses depth. Parameters are
initialised once per test process (`initial_state`), on one device.
"""

from __future__ import annotations

import functools

import jax
import ml_collections
from flax import nnx

from etam_jax.models.build import build_model
from etam_jax.models.configs import get_model_config
from etam_jax.training import losses, sharding
from etam_jax.training import prompt_simulation as ps
from etam_jax.training.optimizer import get_optimizer_config
from etam_jax.training.train_step import init_state
from tests import fast_compile

SIZE = 64


def model_config(dropout: float | None = None) -> ml_collections.ConfigDict:
    """``efficienttam_ti_512x512`` at 64 px with 2 ViT blocks and 1 memory-attention layer
    (``dropout``: the memory attention's rate instead of the official 0.1)."""
    cfg = get_model_config("efficienttam_ti_512x512", image_size=SIZE)
    if dropout is not None:
        cfg.memory_attention.dropout = dropout
    cfg.image_encoder.trunk.depth = 2
    cfg.image_encoder.trunk.window_block_indexes = (0,)
    cfg.memory_attention.num_layers = 1
    return cfg


def build(seed: int = 0, dropout: float | None = None) -> nnx.Module:
    """The reduced model (eager sharding off: no mesh in tests)."""
    return build_model(model_config(dropout), rngs=nnx.Rngs(seed))


def graphdef(dropout: float) -> nnx.GraphDef:
    """The reduced model's graph with another memory-attention dropout rate (0:
    deterministic training); it merges with `graph_and_params`'s parameters."""
    return nnx.split(nnx.eval_shape(lambda: build(dropout=dropout)))[0]


def train_config(corrections: int = 1, lr: float | None = None) -> ml_collections.ConfigDict:
    """A training config: default prompts/losses, SA-V optimizer with a short warm-up."""
    cfg = ml_collections.ConfigDict()
    cfg.seed = 0
    cfg.prompts = ps.default_config()
    cfg.prompts.num_correction_pt_per_frame = corrections
    cfg.loss = losses.default_config()
    cfg.optimizer = get_optimizer_config("sav")
    cfg.optimizer.warmup_steps = 2
    cfg.train = ml_collections.ConfigDict(dict(total_steps=100))  # the schedule's length
    if lr is not None:
        cfg.optimizer.lr = cfg.optimizer.encoder_lr = lr
    cfg.remat = False
    return cfg


def graph_and_params() -> tuple[nnx.GraphDef, nnx.State]:
    """``(graphdef, params)`` of `initial_state` (one initialisation per process)."""
    state, _ = initial_state()
    return state.graphdef, state.params


@functools.cache
def initial_state():
    """A step-0 `TrainState` of the reduced model on one device (cached: copy it
    before a donating train step), with `train_config` (``lr`` 1e-3); its initialiser
    runs once, so it is compiled unoptimised (tests/fast_compile.py)."""
    mesh = sharding.make_mesh((1, 1, 1), jax.devices()[:1])
    return init_state(build, train_config(lr=1e-3), mesh, compiler_options=fast_compile.OPTIONS)
