"""sam_heads.sam_heads_per_row (padded points, multimask choice per row, traced)
against the static-flag sam_heads.forward_sam_heads on each row alone with only
its official prompt tokens."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from etam_jax.models.sam_heads import forward_sam_heads, official_prompt_tokens, sam_heads_per_row
from tests.training import tiny_model

GRID = tiny_model.SIZE // 16


def _prompts():
    """Padded rows (3 point slots): 0-1 one click (multimask); 2 a box, 3 two clicks
    (single mask); 4 no points (a tracked frame, multimask)."""
    coords = np.array(
        [
            [[20.0, 30.0], [0.0, 0.0], [0.0, 0.0]],
            [[50.0, 12.0], [0.0, 0.0], [0.0, 0.0]],
            [[10.0, 14.0], [40.0, 50.0], [0.0, 0.0]],
            [[33.0, 21.0], [0.0, 0.0], [8.0, 60.0]],
            [[0.0, 0.0], [0.0, 0.0], [0.0, 0.0]],
        ],
        np.float32,
    )
    labels = np.array([[1, -1, -1], [0, -1, -1], [2, 3, -1], [1, -1, 0], [-1, -1, -1]], np.int32)
    return coords, labels


def test_official_prompt_tokens():
    """The real points plus one padding token; two padding tokens without points."""
    got = np.asarray(official_prompt_tokens(jnp.asarray(_prompts()[1])))
    want = [
        [1, 1, 0, 0],  # click, pad (+ masked pads)
        [1, 1, 0, 0],
        [1, 1, 1, 0],  # box corners, pad
        [1, 1, 1, 0],  # click, (the pad slot 1 kept as the official pad), click
        [1, 1, 0, 0],  # _forward_sam_heads' pad and the prompt encoder's
    ]
    np.testing.assert_array_equal(got, np.array(want, bool))


@pytest.fixture(scope="module")
def heads():
    """Our padded rows in one call, and each row alone through the static
    (parity-tested) heads with only its official prompt tokens."""
    graphdef, params = tiny_model.graph_and_params()
    real = [[0], [0], [0, 1], [0, 2], None]  # each row's real point slots
    multimask = [True, True, False, False, True]

    @jax.jit
    def run(params, feats, coords, labels, mask_in):
        model = nnx.merge(graphdef, params)
        train = sam_heads_per_row(model, feats, coords, labels, mask_in)
        static = []
        for i, (slots, multi) in enumerate(zip(real, multimask, strict=True)):
            points = None if slots is None else (coords[i : i + 1, slots], labels[i : i + 1, slots])
            static.append(
                forward_sam_heads(model, feats[i : i + 1], points, mask_in[i : i + 1], multi)
            )
        return train, static

    return params, lambda *a: jax.tree.map(np.asarray, run(*a))


def _close(got, want, what):
    scale = np.abs(want).max() + 1e-6
    assert np.abs(got - want).max() / scale < 1e-5, what


@pytest.mark.parametrize("seed", [0, 1])
def test_per_row_heads_match_static_heads_per_row(heads, seed):
    params, run = heads
    rng = np.random.default_rng(seed)
    feats = rng.standard_normal((5, GRID, GRID, 256)).astype(np.float32)
    # Seed 1 feeds previous mask logits back (correction rounds); seed 0 has none
    # (zeros would still go through the mask path, so use large logits instead).
    mask_in = (rng.standard_normal((5, 1, 4 * GRID, 4 * GRID)) * (5.0 if seed else 1.0)).astype(
        np.float32
    )
    train, static = run(params, feats, *_prompts(), mask_in)
    assert train.multimask_logits.shape == (5, 3, 4 * GRID, 4 * GRID)
    for i, want in enumerate(static):
        row = slice(i, i + 1)
        if want.low_res_multimasks.shape[1] == 3:  # multimask: all three and their IoUs
            _close(train.multimask_logits[row], want.low_res_multimasks, f"row {i} multimasks")
            _close(train.ious[row], want.ious, f"row {i} ious")
        else:  # single mask: the one mask and its IoU, repeated three times
            _close(
                train.multimask_logits[row], np.repeat(want.low_res_multimasks, 3, 1), f"row {i}"
            )
            _close(train.ious[row], np.repeat(want.ious, 3, 1), f"row {i} ious")
        for name in ("low_res_masks", "obj_ptr", "object_score_logits"):
            _close(getattr(train, name)[row], getattr(want, name), f"row {i} {name}")
        # The high-res view is the static path's bilinear upsampling.
        _close(train.high_res_masks(tiny_model.SIZE)[row], want.high_res_masks, f"row {i} high res")
