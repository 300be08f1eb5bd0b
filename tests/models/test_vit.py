"""Parity of the ViT trunk and its pieces with the official PyTorch modules."""

import jax.numpy as jnp
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from flax import nnx
from sam2.modeling.backbones import utils as official_utils
from sam2.modeling.backbones.vitdet import ViT as OfficialViT

from etam_jax.errors import EtamError
from etam_jax.models.vit import (
    ViT,
    chunked_dot_product_attention,
    get_abs_pos,
    resize_bicubic_torch,
    window_partition,
    window_unpartition,
)
from tests.models.test_image_encoder import jit_apply
from tests.official_reference import copy_weights, randomize_, relative_error, to_torch

BICUBIC_TOL = 5e-6


@pytest.mark.parametrize(
    "in_hw,out_hw",
    [((14, 14), (64, 64)), ((14, 14), (8, 8)), ((14, 14), (5, 23)), ((7, 9), (7, 4))],
)
def test_bicubic_matches_torch_interpolate(in_hw, out_hw):
    x = np.random.default_rng(0).standard_normal((2, *in_hw, 3)).astype(np.float32)
    with torch.no_grad():
        ref = F.interpolate(
            to_torch(x).permute(0, 3, 1, 2), size=out_hw, mode="bicubic", align_corners=False
        )
    ours = resize_bicubic_torch(x, out_hw)
    assert ours.shape == (2, *out_hw, 3)
    # torch rounds its cubic weights in float32 (ours: float64, then rounded), so the
    # weights differ by up to ~1e-6 at some ratios; at 14 -> 64 (the 1024 model) they agree.
    assert relative_error(ours, ref.permute(0, 2, 3, 1).numpy()) < BICUBIC_TOL


@pytest.mark.parametrize("hw", [(14, 14), (9, 12)])
def test_get_abs_pos_matches_official(hw):
    pos = np.random.default_rng(1).standard_normal((1, 197, 8)).astype(np.float32)
    ref = official_utils.get_abs_pos(to_torch(pos), True, hw).numpy()
    assert relative_error(get_abs_pos(pos, True, hw), ref) < BICUBIC_TOL


def test_window_partition_matches_official():
    x = np.random.default_rng(2).standard_normal((2, 10, 13, 3)).astype(np.float32)
    ref, ref_pad = official_utils.window_partition(to_torch(x), 4)
    windows, pad_hw = window_partition(x, 4)
    assert pad_hw == ref_pad == (12, 16)
    np.testing.assert_array_equal(windows, ref.numpy())
    back = official_utils.window_unpartition(
        to_torch(np.asarray(windows)), 4, pad_hw, (10, 13)
    ).numpy()
    np.testing.assert_array_equal(window_unpartition(windows, 4, pad_hw, (10, 13)), back)
    np.testing.assert_array_equal(back, x)


def _small_vit_pair(seed: int, **shape):
    official = OfficialViT(**shape).eval()
    randomize_(official, seed)
    with nnx.use_eager_sharding(False):
        ours = nnx.eval_shape(lambda: ViT(**shape, rngs=nnx.Rngs(0)))
    copy_weights(ours, official)
    return ours, official


def test_vit_matches_official_windowed_and_global():
    # Grid 10x13 with window 4: padded windows (blocks 0, 2) and global attention (1, 3),
    # and the 14x14 pretrain pos-embed resized to a non-square grid.
    shape = dict(embed_dim=48, depth=4, num_heads=3, window_size=4, window_block_indexes=(0, 2))
    ours, official = _small_vit_pair(5, **shape)
    x = np.random.default_rng(3).standard_normal((2, 160, 208, 3)).astype(np.float32)
    with torch.no_grad():
        (ref,) = official(to_torch(x).permute(0, 3, 1, 2))
    out = jit_apply(ours, x)
    assert out.shape == (2, 10, 13, 48)
    assert relative_error(out, ref.permute(0, 2, 3, 1).numpy()) < 1e-5


@pytest.mark.parametrize(
    "chunk,dtype,tol",
    [(None, "float32", 1e-5), (8, "float32", 1e-5), (32, "float32", 1e-5), (8, "bfloat16", 2e-2)],
)
def test_chunked_attention_matches_brute_force(chunk, dtype, tol):
    rng = np.random.default_rng(4)
    q, k, v = (rng.standard_normal((2, 32, 3, 16)).astype(np.float32) for _ in range(3))
    logits = np.einsum("bnhd,bmhd->bhnm", q, k) / 4.0
    weights = np.exp(logits - logits.max(-1, keepdims=True))
    ref = np.einsum("bhnm,bmhd->bnhd", weights / weights.sum(-1, keepdims=True), v)
    out = chunked_dot_product_attention(*(jnp.asarray(x, dtype) for x in (q, k, v)), chunk)
    assert out.dtype == jnp.dtype(dtype)
    assert relative_error(out, ref) < tol


def test_vit_needs_a_global_block():
    with nnx.use_eager_sharding(False), pytest.raises(EtamError, match="no global block"):
        ViT(embed_dim=12, depth=2, num_heads=3, window_block_indexes=(0, 1), rngs=nnx.Rngs(0))
