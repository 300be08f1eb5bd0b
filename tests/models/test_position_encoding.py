"""Parity of the position encodings with the official PyTorch modules."""

import numpy as np
import pytest
import torch
from flax import nnx
from sam2.modeling.position_encoding import PositionEmbeddingRandom as OfficialRandom
from sam2.modeling.position_encoding import PositionEmbeddingSine as OfficialSine

from etam_jax.errors import EtamError
from etam_jax.models.position_encoding import (
    PositionEmbeddingRandom,
    PositionEmbeddingSine,
    sine_position_encoding,
)
from tests.official_reference import copy_weights, randomize_, relative_error


@pytest.mark.parametrize(
    "shape,feats,kwargs",
    [
        ((2, 5, 7), 256, {}),
        ((1, 64, 64), 256, {}),
        ((1, 4, 3), 16, dict(normalize=False, temperature=20)),
    ],
)
def test_sine_matches_official(shape, feats, kwargs):
    b, h, w = shape
    with torch.no_grad():
        ref = OfficialSine(feats, **kwargs)(torch.zeros(b, 3, h, w)).permute(0, 2, 3, 1).numpy()
    ours = PositionEmbeddingSine(feats, **kwargs)(np.zeros((b, h, w, 3), np.float32))
    assert ours.shape == (b, h, w, feats)
    assert relative_error(ours, ref) < 1e-6
    np.testing.assert_array_equal(ours, sine_position_encoding(b, h, w, feats, **kwargs))


def test_sine_rejects_bad_arguments():
    with pytest.raises(EtamError, match="even"):
        PositionEmbeddingSine(7)
    with pytest.raises(EtamError, match="normalize"):
        PositionEmbeddingSine(8, normalize=False, scale=1.0)


def _random_pair(feats: int, seed: int):
    official = OfficialRandom(feats)
    randomize_(official, seed)
    with nnx.use_eager_sharding(False):
        ours = PositionEmbeddingRandom(feats, rngs=nnx.Rngs(0))
    copy_weights(ours, official)
    return ours, official


def test_random_grid_matches_official():
    ours, official = _random_pair(64, seed=3)
    with torch.no_grad():
        ref = official((6, 9)).permute(1, 2, 0).numpy()
    out = ours((6, 9))
    assert out.shape == (6, 9, 128)
    assert relative_error(out, ref) < 1e-5


def test_random_coords_match_official():
    ours, official = _random_pair(32, seed=4)
    coords = np.random.default_rng(0).uniform(0, 100, (2, 5, 2)).astype(np.float32)
    with torch.no_grad():
        ref = official.forward_with_coords(torch.from_numpy(coords), (80, 120)).numpy()
    out = ours.forward_with_coords(coords, (80, 120))
    assert out.shape == (2, 5, 64)
    assert relative_error(out, ref) < 1e-5


def test_random_buffer_key_and_shape():
    with nnx.use_eager_sharding(False):
        ours = PositionEmbeddingRandom(64, rngs=nnx.Rngs(0))
    official = OfficialRandom(64)
    assert (
        ours.positional_encoding_gaussian_matrix.shape
        == official.positional_encoding_gaussian_matrix.shape
    )
