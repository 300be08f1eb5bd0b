"""Parity of the memory encoder with the official ``MemoryEncoder`` (every weight random)."""

import numpy as np
import pytest
import torch
from flax import nnx
from hydra.utils import instantiate

from etam_jax.errors import EtamError
from etam_jax.models.configs import get_model_config
from etam_jax.models.memory_encoder import MemoryEncoder
from tests.official_reference import (
    copy_weights,
    official_config,
    randomize_,
    relative_error,
    to_torch,
)


def _build(image_size: int, seed: int = 11) -> tuple[MemoryEncoder, torch.nn.Module]:
    torch.manual_seed(seed)
    official = instantiate(
        official_config("efficienttam_ti", image_size).model.memory_encoder, _recursive_=True
    )
    randomize_(official, seed)
    cfg = get_model_config("efficienttam_ti", image_size).memory_encoder
    with nnx.use_eager_sharding(False):  # abstract: every weight comes from the official module
        ours = nnx.eval_shape(lambda: MemoryEncoder(cfg, rngs=nnx.Rngs(0)))
    copy_weights(ours, official)
    return ours, official.eval()


def _inputs(
    batch: int, grid: int, skip_mask_sigmoid: bool, seed: int = 12
) -> tuple[np.ndarray, np.ndarray]:
    """Pixel features and masks: logits, or (as the tracker feeds them) 20 * mask - 10."""
    rng = np.random.default_rng(seed)
    pix = rng.standard_normal((batch, grid, grid, 256), np.float32)
    logits = 4 * rng.standard_normal((batch, 16 * grid, 16 * grid, 1), np.float32)
    masks = 20 * (logits > 0).astype(np.float32) - 10 if skip_mask_sigmoid else logits
    return pix, masks


def _compare(ours, official, pix, masks, skip_mask_sigmoid) -> tuple[float, float]:
    with torch.no_grad():
        ref = official(
            to_torch(pix.transpose(0, 3, 1, 2)),
            to_torch(masks.transpose(0, 3, 1, 2)),
            skip_mask_sigmoid,
        )
    got = ours(pix, masks, skip_mask_sigmoid=skip_mask_sigmoid)
    feats = relative_error(
        got["vision_features"], ref["vision_features"].numpy().transpose(0, 2, 3, 1)
    )
    pos = relative_error(
        got["vision_pos_enc"], ref["vision_pos_enc"][0].numpy().transpose(0, 2, 3, 1)
    )
    return feats, pos


@pytest.mark.parametrize("skip_mask_sigmoid", [False, True])
def test_memory_encoder_matches_official_small(skip_mask_sigmoid):
    ours, official = _build(256)
    pix, masks = _inputs(2, 16, skip_mask_sigmoid)
    feats, pos = _compare(ours, official, pix, masks, skip_mask_sigmoid)
    print(f"g=16 skip={skip_mask_sigmoid}: features {feats:.2e}, pos {pos:.2e}")
    assert feats < 1e-5 and pos < 1e-5


def test_memory_encoder_matches_official_full_size():
    ours, official = _build(1024)
    pix, masks = _inputs(1, 64, skip_mask_sigmoid=True)
    feats, pos = _compare(ours, official, pix, masks, True)
    print(f"g=64: features {feats:.2e}, pos {pos:.2e}")
    assert feats < 1e-5 and pos < 1e-5


def test_memory_encoder_rejects_wrong_mask_size():
    ours, _ = _build(256)
    with pytest.raises(EtamError, match="16x the feature grid"):
        ours(np.zeros((1, 16, 16, 256), np.float32), np.zeros((1, 64, 64, 1), np.float32))
