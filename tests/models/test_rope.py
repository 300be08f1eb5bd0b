"""Parity of the axial RoPE functions with the official complex-number version."""

import numpy as np
import pytest
import torch
from sam2.modeling.position_encoding import apply_rotary_enc as official_apply
from sam2.modeling.position_encoding import compute_axial_cis

from etam_jax.errors import EtamError
from etam_jax.models.rope import apply_rotary_enc, axial_rope_tables
from tests.official_reference import relative_error, to_torch


@pytest.mark.parametrize("dim,end", [(256, 64), (32, 16)])
def test_tables_match_compute_axial_cis(dim, end):
    cis = compute_axial_cis(dim, end, end, theta=10000.0).numpy()
    cos, sin = axial_rope_tables(dim, end, end)
    assert relative_error(cos, cis.real) < 1e-6
    assert relative_error(sin, cis.imag) < 1e-6


@pytest.mark.parametrize("frames,heads", [(1, 1), (3, 2)])
def test_apply_rotary_enc_matches_official(frames, heads):
    grid, dim = 8, 32
    rng = np.random.default_rng(0)
    q = rng.standard_normal((2, grid * grid, heads, dim), np.float32)
    k = rng.standard_normal((2, frames * grid * grid, heads, dim), np.float32)
    cis = compute_axial_cis(dim, grid, grid)
    # The official layout is (B, heads, N, D).
    ref_q, ref_k = official_apply(
        to_torch(q.transpose(0, 2, 1, 3)),
        to_torch(k.transpose(0, 2, 1, 3)),
        cis,
        repeat_freqs_k=frames > 1,
    )
    cos, sin = axial_rope_tables(dim, grid, grid)
    ours_q, ours_k = apply_rotary_enc(q, k, cos, sin, repeat_freqs_k=frames > 1)
    assert relative_error(ours_q, ref_q.numpy().transpose(0, 2, 1, 3)) < 1e-6
    assert relative_error(ours_k, ref_k.numpy().transpose(0, 2, 1, 3)) < 1e-6


def test_apply_rotary_enc_rejects_mismatched_keys():
    cos, sin = axial_rope_tables(8, 2, 2)
    with pytest.raises(EtamError, match="key tokens"):
        apply_rotary_enc(
            np.zeros((1, 4, 1, 8), np.float32),
            np.zeros((1, 6, 1, 8), np.float32),
            cos,
            sin,
            repeat_freqs_k=True,
        )


def test_empty_keys_pass_through():
    cos, sin = axial_rope_tables(8, 2, 2)
    k = torch.zeros((1, 0, 1, 8)).numpy()
    _, out = apply_rotary_enc(np.ones((1, 4, 1, 8), np.float32), k, cos, sin)
    assert out.shape == (1, 0, 1, 8)
