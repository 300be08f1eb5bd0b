"""The eval stage's weights: a training checkpoint's params go into the point's model unchanged."""

import jax
import numpy as np
import optax
import pytest
from flax import nnx

from etam_jax.convert.checkpoint_io import load_weights
from etam_jax.errors import EtamError
from etam_jax.models.configs import get_model_config
from etam_jax.models.memory_attention import MemoryAttention
from etam_jax.training import checkpoints
from etam_jax.training.train_state import TrainState


def memory_attention(window: int, seed: int) -> MemoryAttention:
    cfg = get_model_config("efficienttam_ti", 64).memory_attention
    cfg.pool_window, cfg.num_layers = window, 2
    with nnx.use_eager_sharding(False):
        return MemoryAttention(cfg, 4, rngs=nnx.Rngs(seed))


def save_run(workdir, model, step: int) -> None:
    graphdef, params = nnx.split(model)
    state = TrainState.create(graphdef, params, optax.adam(1e-3), seed=0)
    with checkpoints.Checkpointer(workdir, checkpoints.default_config(), "efficienttam_ti") as ckpt:
        ckpt.save(step, state.replace(step=np.int32(step)), force=True)


def test_latest_training_checkpoint_params_load_into_a_pooled_model(tmp_path):
    save_run(tmp_path, memory_attention(1, seed=1), step=3)
    trained = memory_attention(1, seed=2)
    save_run(tmp_path, trained, step=5)
    model = memory_attention(2, seed=3)  # another pooling: the same weights
    for path in (tmp_path / "checkpoints", tmp_path, tmp_path / "checkpoints" / "5"):
        load_weights(model, None, path)  # checkpoints/, the workdir, the step: the same
        got, want = nnx.state(model, nnx.Param), nnx.state(trained, nnx.Param)
        jax.tree.map(np.testing.assert_array_equal, got, want)
    load_weights(model, None, tmp_path / "checkpoints" / "3")
    with pytest.raises(AssertionError):
        jax.tree.map(np.testing.assert_array_equal, nnx.state(model, nnx.Param), want)
    assert model.layers[0].cross_attn_image.pool_window == 2
    with pytest.raises(
        EtamError, match="a training checkpoint of model 'efficienttam_ti', not 'x'"
    ):
        load_weights(model, "x", tmp_path)


def test_weights_of_another_shape_are_refused(tmp_path):
    save_run(tmp_path, memory_attention(1, seed=1), step=1)
    cfg = get_model_config("efficienttam_ti", 64).memory_attention
    cfg.num_layers, cfg.dim_feedforward = 2, 64
    with nnx.use_eager_sharding(False):
        narrow = MemoryAttention(cfg, 4, rngs=nnx.Rngs(0))
    with pytest.raises(EtamError, match="other shape .*linear1"):
        load_weights(narrow, None, tmp_path / "checkpoints")
    (tmp_path / "empty" / "checkpoints").mkdir(parents=True)
    with pytest.raises(EtamError, match="no training checkpoint"):
        load_weights(narrow, None, tmp_path / "empty")
    (tmp_path / "plain").mkdir()
    with pytest.raises(EtamError, match="plain: not a checkpoint"):
        load_weights(narrow, None, tmp_path / "plain")
