"""Parity of the shared building blocks with the official PyTorch modules."""

import numpy as np
import pytest
import torch
from flax import nnx
from sam2.modeling.sam.transformer import Attention as OfficialAttention
from sam2.modeling.sam2_utils import MLP as OfficialMLP

from etam_jax.models.attention import Attention
from etam_jax.models.mlp import MLP
from tests.official_reference import copy_weights, randomize_, relative_error, to_torch


@pytest.mark.parametrize("downsample_rate,kv_in_dim,heads", [(1, None, 1), (2, 64, 8)])
def test_attention_matches_official(downsample_rate, kv_in_dim, heads):
    official = OfficialAttention(256, heads, downsample_rate=downsample_rate, kv_in_dim=kv_in_dim)
    randomize_(official, seed=1)
    with nnx.use_eager_sharding(False):
        ours = Attention(
            256, heads, downsample_rate=downsample_rate, kv_in_dim=kv_in_dim, rngs=nnx.Rngs(0)
        )
    copy_weights(ours, official)
    rng = np.random.default_rng(0)
    q = rng.standard_normal((2, 10, 256), np.float32)
    kv = rng.standard_normal((2, 7, kv_in_dim or 256), np.float32)
    with torch.no_grad():
        ref = official(to_torch(q), to_torch(kv), to_torch(kv)).numpy()
    assert relative_error(ours(q, kv, kv), ref) < 1e-5


@pytest.mark.parametrize("num_layers,sigmoid", [(1, False), (3, True)])
def test_mlp_matches_official(num_layers, sigmoid):
    official = OfficialMLP(32, 48, 16, num_layers, sigmoid_output=sigmoid)
    randomize_(official, seed=2)
    with nnx.use_eager_sharding(False):
        ours = MLP(32, 48, 16, num_layers, sigmoid_output=sigmoid, rngs=nnx.Rngs(0))
    copy_weights(ours, official)
    x = np.random.default_rng(1).standard_normal((3, 5, 32), np.float32)
    with torch.no_grad():
        ref = official(to_torch(x)).numpy()
    assert relative_error(ours(x), ref) < 1e-5
