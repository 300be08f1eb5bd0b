"""train_heads.train_sam_heads (multimask choice per row, traced) against the
static-flag sam_heads.forward_sam_heads on the same rows and points."""

import jax
import numpy as np
import pytest
from flax import nnx

from etam_jax.models.sam_heads import forward_sam_heads
from etam_jax.training.train_heads import train_sam_heads
from tests.training import tiny_model

GRID = tiny_model.SIZE // 16


def _prompts():
    """Rows 0-1: one click + padding (multimask); rows 2-3: a box / two clicks (single mask)."""
    coords = np.array(
        [
            [[20.0, 30.0], [0.0, 0.0], [0.0, 0.0]],
            [[50.0, 12.0], [0.0, 0.0], [0.0, 0.0]],
            [[10.0, 14.0], [40.0, 50.0], [0.0, 0.0]],
            [[33.0, 21.0], [0.0, 0.0], [8.0, 60.0]],
        ],
        np.float32,
    )
    labels = np.array([[1, -1, -1], [0, -1, -1], [2, 3, -1], [1, -1, 0]], np.int32)
    return coords, labels


@pytest.fixture(scope="module")
def heads():
    graphdef, params = tiny_model.graph_and_params()

    @jax.jit
    def run(params, feats, coords, labels, mask_in):
        model = nnx.merge(graphdef, params)
        train = train_sam_heads(model, feats, coords, labels, mask_in)
        multi = forward_sam_heads(
            model, feats[:2], (coords[:2], labels[:2]), mask_in[:2], True
        )
        single = forward_sam_heads(
            model, feats[2:], (coords[2:], labels[2:]), mask_in[2:], False
        )
        return train, multi, single

    return params, lambda *a: jax.tree.map(np.asarray, run(*a))


def _close(got, want, what):
    scale = np.abs(want).max() + 1e-6
    assert np.abs(got - want).max() / scale < 1e-5, what


@pytest.mark.parametrize("seed", [0, 1])
def test_train_heads_match_static_heads_per_row(heads, seed):
    params, run = heads
    rng = np.random.default_rng(seed)
    feats = rng.standard_normal((4, GRID, GRID, 256)).astype(np.float32)
    # Seed 1 feeds previous mask logits back (correction rounds); seed 0 has none
    # (zeros would still go through the mask path, so use large logits instead).
    mask_in = (
        rng.standard_normal((4, 1, 4 * GRID, 4 * GRID)) * (5.0 if seed else 1.0)
    ).astype(np.float32)
    train, multi, single = run(params, feats, *_prompts(), mask_in)
    assert train.multimask_logits.shape == (4, 3, 4 * GRID, 4 * GRID)
    # Multimask rows: all three masks and IoUs; the chosen one by predicted IoU.
    _close(train.multimask_logits[:2], multi.low_res_multimasks, "multimasks")
    _close(train.ious[:2], multi.ious, "multimask ious")
    # Single-mask rows: the one mask and its IoU, repeated three times.
    _close(
        train.multimask_logits[2:], np.repeat(single.low_res_multimasks, 3, 1), "single"
    )
    _close(train.ious[2:], np.repeat(single.ious, 3, 1), "single ious")
    for name in ("low_res_masks", "obj_ptr", "object_score_logits"):
        got = getattr(train, name)
        _close(got[:2], getattr(multi, name), f"multimask {name}")
        _close(got[2:], getattr(single, name), f"single {name}")
    # The high-res views are the static path's bilinear upsampling.
    _close(train.high_res_masks(tiny_model.SIZE)[:2], multi.high_res_masks, "high res")
    _close(train.high_res_masks(tiny_model.SIZE)[2:], single.high_res_masks, "high res")
