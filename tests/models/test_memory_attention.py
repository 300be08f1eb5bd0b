"""Memory attention with static slots vs the official module on the valid memories.

Official configs: efficienttam_ti (full), _ti_1 (Eq. 5 pooling), _ti_2 (Eq. 6)
at image 256 (grid 16), the pooled ones also at 1024 (grid 64). Other pool
windows: a brute-force numpy reference of the formula, itself checked against
the official Eq. 5/6 modules at window 2.
"""

import math

import jax
import numpy as np
import pytest
import torch
from flax import nnx
from hydra.utils import instantiate
from sam2.modeling.position_encoding import apply_rotary_enc as official_rope
from sam2.modeling.position_encoding import compute_axial_cis
from sam2.modeling.sam.transformer import (
    EfficientRoPEAttention1,
    EfficientRoPEAttention2,
    RoPEAttention,
)

from etam_jax.errors import EtamError
from etam_jax.models import pooled_attention
from etam_jax.models.configs import feature_grid, get_model_config
from etam_jax.models.memory_attention import MemoryAttention, make_bank
from etam_jax.models.pooled_attention import MemoryCrossAttention
from etam_jax.models.rope import axial_rope_tables
from tests.official_reference import (
    copy_weights,
    official_config,
    randomize_,
    relative_error,
    to_torch,
)

IMAGE, GRID, SLOTS, PTRS = 256, 16, 4, 8
HW = GRID * GRID
# Per batch element: valid memory slots, valid pointer tokens. Covers pooled (3 and 2 frames),
# the one-frame fallback and no pointers at all.
VALID = np.array([[1, 0, 1, 1], [0, 0, 1, 0], [1, 1, 0, 0]], bool)
PTR_VALID = np.array([[1] * 4 + [0] * 4, [1] * 8, [0] * 8], bool)
# Slot 3 empty in every element and no fallback: its key block is skipped on CPU, pooled or not.
DEAD_SLOT = np.array([[1, 0, 1, 0], [0, 1, 1, 0], [1, 1, 0, 0]], bool)


def _inputs(
    seed: int,
    batch: int = 3,
    kv_dim: int = 64,
    slots_valid: np.ndarray = VALID,
    grid: int = GRID,
) -> dict[str, np.ndarray]:
    """Random inputs; invalid slots and pointers hold garbage (huge values, NaN)."""
    rng = np.random.default_rng(seed)
    hw = grid * grid
    x = {
        "curr": rng.standard_normal((batch, hw, 256), np.float32),
        "curr_pos": rng.standard_normal((batch, hw, 256), np.float32),
        "memory": rng.standard_normal((batch, SLOTS, hw, kv_dim), np.float32),
        "memory_pos": rng.standard_normal((batch, SLOTS, hw, kv_dim), np.float32),
        "memory_valid": slots_valid[:batch],
        "ptr": rng.standard_normal((batch, PTRS, kv_dim), np.float32),
        "ptr_pos": rng.standard_normal((batch, PTRS, kv_dim), np.float32),
        "ptr_valid": PTR_VALID[:batch],
    }
    for name, valid in (("memory", "memory_valid"), ("ptr", "ptr_valid")):
        for key in (name, name + "_pos"):
            x[key][~x[valid]] = 1e4
        x[name][~x[valid]] = np.nan
    return x


def _concat_valid(x: dict[str, np.ndarray], b: int) -> tuple[torch.Tensor, torch.Tensor, int]:
    """The official memory of element b (seq-first): valid slots then valid pointer tokens."""
    ok, ptr_ok = x["memory_valid"][b], x["ptr_valid"][b]
    mem = np.concatenate([x["memory"][b, ok].reshape(-1, 64), x["ptr"][b, ptr_ok]])
    pos = np.concatenate([x["memory_pos"][b, ok].reshape(-1, 64), x["ptr_pos"][b, ptr_ok]])
    return to_torch(mem[:, None]), to_torch(pos[:, None]), int(ptr_ok.sum())


def _official_outputs(official: torch.nn.Module, x: dict[str, np.ndarray]) -> np.ndarray:
    outs = []
    for b in range(len(x["curr"])):
        mem, pos, num_ptr = _concat_valid(x, b)
        with torch.no_grad():
            out = official(
                to_torch(x["curr"][b][:, None]),
                mem,
                curr_pos=to_torch(x["curr_pos"][b][:, None]),
                memory_pos=pos,
                num_obj_ptr_tokens=num_ptr,
            )
        outs.append(out[:, 0].numpy())
    return np.stack(outs)


def _build(name: str, seed: int = 3, image: int = IMAGE) -> tuple[MemoryAttention, torch.nn.Module]:
    torch.manual_seed(seed)
    official = instantiate(official_config(name, image).model.memory_attention, _recursive_=True)
    randomize_(official, seed)
    with nnx.use_eager_sharding(False):  # abstract: every weight comes from the official module
        model_cfg = get_model_config(name, image)
        grid = feature_grid(model_cfg)
        ours = nnx.eval_shape(
            lambda: MemoryAttention(model_cfg.memory_attention, grid, rngs=nnx.Rngs(0))
        )
    copy_weights(ours, official)
    return ours, official.eval()


def _jitted(module: nnx.Module, **static):
    graphdef, state = nnx.split(module)

    @jax.jit
    def run(state, inputs):
        return nnx.merge(graphdef, state)(**inputs, **static)

    return lambda inputs: run(state, inputs)


@pytest.mark.parametrize("name", ["efficienttam_ti", "efficienttam_ti_1", "efficienttam_ti_2"])
def test_memory_attention_matches_official(name):
    ours, official = _build(name)
    x = _inputs(seed=4)
    got = np.asarray(_jitted(ours)(x))
    err = relative_error(got, _official_outputs(official, x))
    print(f"{name}: relative error {err:.2e}")
    assert err < 1e-5


@pytest.mark.parametrize("name", ["efficienttam_ti_1", "efficienttam_ti_2"])
def test_pooled_memory_attention_at_1024_matches_official(name):
    """Full size (grid 64): pooled keys on a 32 x 32 grid, their RoPE tables and the
    CPU query-blocked path as the tracker takes them at 1024 px."""
    ours, official = _build(name, image=1024)
    x = _inputs(seed=5, batch=2, grid=64)
    err = relative_error(np.asarray(_jitted(ours)(x)), _official_outputs(official, x))
    print(f"{name} at 1024: relative error {err:.2e}")
    assert err < 1e-5


@pytest.mark.parametrize(
    "name,valid",
    [
        ("efficienttam_ti_1", VALID),
        ("efficienttam_ti", DEAD_SLOT),
        ("efficienttam_ti_1", DEAD_SLOT),
    ],
)
def test_blocked_cpu_attention_path_matches_official(monkeypatch, name, valid):
    """The query-blocked, slot-skipping path (taken on CPU at g >= 32) with pooling and slot masks."""
    monkeypatch.setattr(pooled_attention, "auto_query_chunk", lambda n: 64)
    ours, official = _build(name)
    x = _inputs(seed=8, slots_valid=valid)
    err = relative_error(np.asarray(_jitted(ours)(x)), _official_outputs(official, x))
    assert err < 1e-5


def _rope_np(t: np.ndarray, frames: int) -> np.ndarray:
    """Official RoPE (complex) on [N, D] tokens of ``frames`` grids."""
    cis = compute_axial_cis(t.shape[-1], GRID, GRID)
    q = torch.zeros((1, 1, HW, t.shape[-1]))
    _, k = official_rope(q, to_torch(t[None, None]), cis, repeat_freqs_k=frames > 1)
    return k[0, 0].numpy().astype(np.float64)


def _brute_force(
    weights: dict, x: np.ndarray, mem_k, mem_v, ptr_k, ptr_v, window: int, correction: str
):
    """The pooled attention formula, token by token (numpy float64), one head, one element."""
    lin = lambda t, name: (
        t.astype(np.float64) @ weights[name + ".weight"].T + weights[name + ".bias"]
    )
    frames = len(mem_k)
    q = _rope_np(lin(x, "q_proj").astype(np.float32), 1)
    k = [_rope_np(lin(f, "k_proj").astype(np.float32), 1) for f in mem_k]
    v = [lin(f, "v_proj") for f in mem_v]
    keys, values, bias = [], [], []
    pooled = window > 1 and frames > 1
    side = GRID // window if pooled else GRID
    for kf, vf in zip(k, v):
        for py in range(side):
            for px in range(side):
                rows = [
                    (py * window + i) * GRID + px * window + j
                    for i in range(window)
                    for j in range(window)
                ]
                rows = rows if pooled else [py * GRID + px]
                keys.append(
                    kf[rows].mean(0)
                    + (math.log(window**2) if pooled and correction == "eq6" else 0.0)
                )
                values.append(vf[rows].mean(0))
                bias.append(math.log(window**2) if pooled and correction == "eq5" else 0.0)
    keys = np.array(keys + list(lin(ptr_k, "k_proj"))).reshape(-1, q.shape[-1])
    values = np.array(values + list(lin(ptr_v, "v_proj"))).reshape(-1, q.shape[-1])
    bias = np.array(bias + [0.0] * len(ptr_k))
    logits = q @ keys.T / math.sqrt(q.shape[-1]) + bias
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    out = (probs / probs.sum(-1, keepdims=True)) @ values
    return out @ weights["out_proj.weight"].T + weights["out_proj.bias"]


def _cross_case(seed: int):
    rng = np.random.default_rng(seed)
    official = RoPEAttention(256, 1, kv_in_dim=64, rope_k_repeat=True, feat_sizes=(GRID, GRID))
    randomize_(official, seed)
    weights = {k: v.numpy().astype(np.float64) for k, v in official.state_dict().items()}
    x = _inputs(seed)
    q = rng.standard_normal((3, HW, 256), np.float32)
    return official, weights, x, q


def _reference(weights, x, q, window, correction):
    outs = []
    for b in range(len(q)):
        ok, pok = x["memory_valid"][b], x["ptr_valid"][b]
        mk = list(x["memory"][b, ok] + x["memory_pos"][b, ok])
        pk = x["ptr"][b, pok] + x["ptr_pos"][b, pok]
        outs.append(
            _brute_force(
                weights,
                q[b],
                mk,
                list(x["memory"][b, ok]),
                pk,
                x["ptr"][b, pok],
                window,
                correction,
            )
        )
    return np.stack(outs)


@pytest.mark.parametrize(
    "cls,correction", [(EfficientRoPEAttention1, "eq5"), (EfficientRoPEAttention2, "eq6")]
)
def test_brute_force_reference_matches_official_window_2(cls, correction):
    _, weights, x, q = _cross_case(seed=5)
    official = cls(256, 1, kv_in_dim=64, rope_k_repeat=True, feat_sizes=(GRID, GRID))
    official.load_state_dict({k: torch.from_numpy(v).float() for k, v in weights.items()})
    ref = _reference(weights, x, q, 2, correction)
    for b in range(len(q)):
        mem, pos, num_ptr = _concat_valid(x, b)
        with torch.no_grad():
            out = official.eval()(
                to_torch(q[b][None]), (mem + pos)[:, 0][None], mem[:, 0][None], num_ptr
            )
        assert relative_error(ref[b], out[0].numpy()) < 1e-5


@pytest.mark.parametrize(
    "window,correction", [(4, "eq5"), (4, "eq6"), (8, "eq5"), (2, "none"), (1, "none")]
)
def test_cross_attention_pool_windows_match_brute_force(window, correction):
    official, weights, x, q = _cross_case(seed=6)
    with nnx.use_eager_sharding(False):
        ours = MemoryCrossAttention(
            256,
            1,
            kv_in_dim=64,
            pool_window=window,
            pool_correction=correction,
            dropout=0.1,
            rngs=nnx.Rngs(0),
        )
    copy_weights(ours, official)
    bank = make_bank(
        *(x[k] for k in ("memory", "memory_pos", "memory_valid", "ptr", "ptr_pos", "ptr_valid"))
    )
    got = ours(q, bank, axial_rope_tables(256, GRID, GRID), GRID)
    err = relative_error(got, _reference(weights, x, q, window, correction))
    print(f"window {window} {correction}: relative error {err:.2e}")
    assert err < 1e-5


def test_dropout_needs_rng_and_is_reproducible():
    cfg = get_model_config("efficienttam_ti_1", IMAGE).memory_attention
    cfg.num_layers = 1
    with nnx.use_eager_sharding(False):
        ours = MemoryAttention(cfg, GRID, rngs=nnx.Rngs(0))
    x = _inputs(seed=7, batch=1)
    with pytest.raises(EtamError, match="dropout rng"):
        ours(**x, deterministic=False)
    train = _jitted(ours, deterministic=False)
    a, b = (np.asarray(train({**x, "rng": jax.random.key(1)})) for _ in range(2))
    other = np.asarray(train({**x, "rng": jax.random.key(2)}))
    plain = np.asarray(_jitted(ours)(x))
    assert np.isfinite(a).all() and np.array_equal(a, b)
    assert not np.allclose(a, plain) and not np.allclose(a, other)


@pytest.mark.parametrize(
    "window,correction,match", [(3, "eq5", "pool_window"), (2, "eq7", "pool_correction")]
)
def test_bad_pooling_config_is_rejected(window, correction, match):
    cfg = get_model_config("efficienttam_ti", IMAGE).memory_attention
    cfg.pool_window, cfg.pool_correction = window, correction
    with pytest.raises(EtamError, match=match), nnx.use_eager_sharding(False):
        MemoryAttention(cfg, GRID, rngs=nnx.Rngs(0))
