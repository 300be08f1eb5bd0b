"""Parity of the prompt encoder with the official PyTorch module."""

import numpy as np
import pytest
import torch
from flax import nnx
from sam2.modeling.sam.prompt_encoder import PromptEncoder as OfficialPromptEncoder

from etam_jax.errors import EtamError
from etam_jax.models.prompt_encoder import PromptEncoder
from tests.official_reference import copy_weights, randomize_, relative_error, to_torch

IMAGE, GRID = 256, 16


@pytest.fixture(scope="module")
def encoders():
    official = OfficialPromptEncoder(256, (GRID, GRID), (IMAGE, IMAGE), 16)
    randomize_(official, seed=3)
    with nnx.use_eager_sharding(False):
        ours = PromptEncoder(256, (GRID, GRID), (IMAGE, IMAGE), 16, rngs=nnx.Rngs(0))
    copy_weights(ours, official.eval())
    return ours, official


def _prompts(batch: int, with_points: bool, with_box: bool, with_mask: bool, seed: int = 0):
    """Random prompts; clicks padded with -1 and using every label kind."""
    rng = np.random.default_rng(seed)
    points = boxes = masks = None
    if with_points:
        coords = rng.uniform(0, IMAGE - 1, (batch, 5, 2)).astype(np.float32)
        labels = np.array([[1, 0, 1, -1, -1], [1, -1, -1, -1, -1], [2, 3, 1, 0, -1]], np.int32)[
            :batch
        ]
        points = (coords, labels)
    if with_box:
        corners = np.sort(rng.uniform(0, IMAGE - 1, (batch, 2, 2)), axis=1).astype(np.float32)
        boxes = corners.reshape(batch, 4)
    if with_mask:
        masks = rng.standard_normal((batch, 4 * GRID, 4 * GRID, 1)).astype(np.float32) * 5
    return points, boxes, masks


def _official(official, points, boxes, masks):
    with torch.no_grad():
        sparse, dense = official(
            None if points is None else (to_torch(points[0]), to_torch(points[1])),
            None if boxes is None else to_torch(boxes),
            None if masks is None else to_torch(masks.transpose(0, 3, 1, 2)),
        )
    return sparse.detach().numpy(), dense.detach().numpy().transpose(0, 2, 3, 1)


@pytest.mark.parametrize(
    "with_points,with_box,with_mask",
    [
        (True, False, False),
        (True, True, True),
        (False, True, False),
        (False, False, True),
        (False, False, False),
    ],
)
def test_prompt_encoder_matches_official(encoders, with_points, with_box, with_mask):
    ours, official = encoders
    points, boxes, masks = _prompts(3, with_points, with_box, with_mask)
    ref_sparse, ref_dense = _official(official, points, boxes, masks)
    sparse, dense = ours(points, boxes, masks)
    assert sparse.shape == ref_sparse.shape and dense.shape == ref_dense.shape
    assert relative_error(dense, ref_dense) < 1e-5
    if ref_sparse.size:
        assert relative_error(sparse, ref_sparse) < 1e-5


def test_box_as_corner_points_equals_native_box(encoders):
    """Labels 2/3 (the video predictor's box) embed like a native box, plus the pad point."""
    ours, official = encoders
    _, boxes, _ = _prompts(2, False, True, False)
    corners = boxes.reshape(2, 2, 2)
    labels = np.array([[2, 3]] * 2, np.int32)
    ref_sparse, _ = _official(official, (corners, labels), None, None)
    sparse, _ = ours((corners, labels), None, None)
    assert relative_error(sparse, ref_sparse) < 1e-5
    native, _ = ours(None, boxes, None)
    assert relative_error(sparse[:, :2], native) < 1e-5


def test_dense_pe_matches_official(encoders):
    ours, official = encoders
    with torch.no_grad():
        ref = official.get_dense_pe().numpy().transpose(0, 2, 3, 1)
    assert relative_error(ours.get_dense_pe(), ref) < 1e-5


def test_wrong_mask_size_raises(encoders):
    ours, _ = encoders
    with pytest.raises(EtamError, match="mask prompt has shape"):
        ours(None, None, np.zeros((1, 32, 32, 1), np.float32))
