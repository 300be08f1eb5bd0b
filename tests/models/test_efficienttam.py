"""The top-level model's per-frame pieces against the official ``SAM2Base`` methods.

SAM heads (multimask choice, object-score gating, the ``no_obj_ptr`` of
absent objects), mask-as-output, and memory encoding, each compared with
the official method on the same inputs; the object-score head's bias is
pushed to both sides of 0 so both branches of the gating are exercised.
"""

import jax.numpy as jnp
import numpy as np
import pytest
import torch

from etam_jax.models import sam_heads
from etam_jax.models.build import empty_model
from tests.official_reference import (
    build_official,
    copy_weights,
    relative_error,
    to_torch,
)

SIZE, GRID = 64, 4


@pytest.fixture(scope="module")
def models():
    official = build_official("efficienttam_ti", image_size=SIZE, seed=5)
    ours = empty_model("efficienttam_ti", image_size=SIZE)
    copy_weights(ours, official)
    return ours, official


def _set_object_bias(ours, official, shift):
    with torch.no_grad():
        official.sam_mask_decoder.pred_obj_score_head.layers[-1].bias.add_(shift)
    copy_weights(ours, official)


def _inputs():
    rng = np.random.default_rng(0)
    feats = rng.standard_normal((2, GRID, GRID, 256)).astype(np.float32)
    coords = rng.uniform(0, SIZE, (2, 1, 2)).astype(np.float32)
    labels = np.array([[1], [0]], np.int32)
    mask = (rng.random((2, 1, SIZE, SIZE)) > 0.5).astype(np.float32)
    mask[1] = 0.0  # an empty mask: "no object" in _use_mask_as_output
    return feats, coords, labels, mask


def _compare(ours: sam_heads.SamOutputs, ref, tol=1e-5):
    _, _, ious, low, high, ptr, score = ref
    pairs = [
        (ours.ious, ious),
        (ours.low_res_masks, low),
        (ours.high_res_masks, high),
        (ours.obj_ptr, ptr),
        (ours.object_score_logits, score),
    ]
    return max(relative_error(a, b.numpy()) for a, b in pairs)


@pytest.mark.parametrize("shift", [0.0, -50.0])  # present / absent objects
@pytest.mark.parametrize("multimask", [True, False])
def test_forward_sam_heads_matches_official(models, shift, multimask):
    ours, official = models
    _set_object_bias(ours, official, shift)
    try:
        feats, coords, labels, _ = _inputs()
        got = sam_heads.forward_sam_heads(
            ours, jnp.asarray(feats), (coords, labels), None, multimask
        )
        with torch.no_grad():
            ref = official._forward_sam_heads(
                to_torch(feats).permute(0, 3, 1, 2),
                {"point_coords": to_torch(coords), "point_labels": to_torch(labels)},
                multimask_output=multimask,
            )
        assert _compare(got, ref) < 1e-5
        if shift < 0:  # gated: every logit is NO_OBJ_SCORE
            assert np.all(np.asarray(got.low_res_masks) == sam_heads.NO_OBJ_SCORE)
    finally:
        _set_object_bias(ours, official, -shift)


def test_use_mask_as_output_matches_official(models):
    ours, official = models
    feats, _, _, mask = _inputs()
    got = sam_heads.use_mask_as_output(ours, jnp.asarray(feats), jnp.asarray(mask))
    with torch.no_grad():
        ref = official._use_mask_as_output(
            to_torch(feats).permute(0, 3, 1, 2), None, to_torch(mask)
        )
    assert _compare(got, ref) < 1e-5


@pytest.mark.parametrize("binarize", [True, False])
def test_encode_new_memory_matches_official(models, binarize):
    ours, official = models
    official.binarize_mask_from_pts_for_mem_enc = True
    rng = np.random.default_rng(1)
    feats = rng.standard_normal((2, GRID, GRID, 256)).astype(np.float32)
    logits = 5 * rng.standard_normal((2, 1, SIZE, SIZE)).astype(np.float32)
    got = ours.encode_new_memory(jnp.asarray(feats), jnp.asarray(logits), jnp.full((2,), binarize))
    with torch.no_grad():
        flat = [to_torch(feats).reshape(2, GRID * GRID, 256).permute(1, 0, 2)]
        mem, pos = official._encode_new_memory(
            flat, [(GRID, GRID)], to_torch(logits), is_mask_from_pts=binarize
        )
    assert relative_error(got["vision_features"], mem.permute(0, 2, 3, 1).numpy()) < 1e-5
    assert relative_error(got["vision_pos_enc"], pos[0].permute(0, 2, 3, 1).numpy()) < 1e-5
