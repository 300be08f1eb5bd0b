"""Parity of the two-way transformer with the official PyTorch module."""

import numpy as np
import pytest
import torch
from flax import nnx
from sam2.modeling.sam.transformer import TwoWayTransformer as OfficialTwoWayTransformer

from etam_jax.models.two_way_transformer import TwoWayTransformer
from tests.official_reference import copy_weights, randomize_, relative_error, to_torch


@pytest.fixture(scope="module")
def transformers():
    official = OfficialTwoWayTransformer(depth=2, embedding_dim=256, num_heads=8, mlp_dim=2048)
    randomize_(official, seed=4)
    with nnx.use_eager_sharding(False):
        ours = TwoWayTransformer(
            depth=2, embedding_dim=256, num_heads=8, mlp_dim=2048, rngs=nnx.Rngs(0)
        )
    copy_weights(ours, official.eval())
    return ours, official


@pytest.mark.parametrize("batch,tokens,pe_batch", [(1, 7, 1), (3, 9, 1), (2, 11, 2)])
def test_two_way_transformer_matches_official(transformers, batch, tokens, pe_batch):
    ours, official = transformers
    rng = np.random.default_rng(batch)
    image = rng.standard_normal((batch, 16, 16, 256), np.float32)
    pe = rng.standard_normal((pe_batch, 16, 16, 256), np.float32)
    points = rng.standard_normal((batch, tokens, 256), np.float32)
    with torch.no_grad():
        ref_q, ref_k = official(
            to_torch(image.transpose(0, 3, 1, 2)),
            to_torch(pe.transpose(0, 3, 1, 2)),
            to_torch(points),
        )
    queries, keys = ours(image, pe, points)
    assert queries.shape == (batch, tokens, 256) and keys.shape == (batch, 256, 256)
    assert relative_error(queries, ref_q.numpy()) < 1e-5
    assert relative_error(keys, ref_k.numpy()) < 1e-5
