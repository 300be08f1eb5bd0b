"""train_step: NaN guard, learning on a fixed batch, and equal results on 8 fake
CPU devices under data-parallel, FSDP and FSDP + tensor meshes.

Batches are images (``T = 1``, SA-1B style: box/click prompts and a correction
round, no memory): the clip path (memory bank, memory attention) is checked
against an independent path in test_clip_forward.py, and a clip step costs
about 4x the compile time.
"""

import functools
import math

import jax
import numpy as np
import pytest

from etam_jax.training import sharding
from etam_jax.training.train_step import (
    abstract_batch,
    compile_step,
    make_train_step,
    state_shardings,
)
from tests import fast_compile
from tests.training import tiny_model

B, O, S = 8, 1, tiny_model.SIZE  # 8 clips: divisible by every mesh's data x fsdp
# tiny_model.initial_state's optimizer; no correction rounds (a quarter less to compile).
CFG = tiny_model.train_config(corrections=0, lr=1e-3)


def _batch():
    rng = np.random.default_rng(1)
    masks = np.zeros((B, 1, O, S, S), bool)
    for b in range(B):
        y, x = rng.integers(4, 30, 2)
        masks[b, 0, 0, y : y + 20 + b, x : x + 28 - b] = True
    frames = rng.integers(0, 256, (B, 1, S, S, 3), dtype=np.uint8)
    frames[masks[:, :, 0]] //= 3  # objects darker than the background: learnable
    valid = {"obj_valid": np.ones((B, O), bool), "frame_valid": np.ones((B, 1), bool)}
    return {"frames": frames, "masks": masks, **valid}


def _fresh_state(mesh):
    """A copy of the cached initial state laid out on ``mesh`` (steps donate it)."""
    state, _ = tiny_model.initial_state()
    shardings = state_shardings(jax.eval_shape(lambda s: s, state), mesh)
    return jax.device_put(jax.tree.map(lambda x: x.copy(), state), shardings), shardings


@functools.cache
def _compiled(shape):
    """``(mesh, step, batch on the mesh)`` for a (data, fsdp, tensor) mesh shape.

    The single-device step runs 16 times in this file and is optimised; a mesh's
    runs 3 times and is compiled unoptimised (tests/fast_compile.py)."""
    mesh = sharding.make_mesh(shape, jax.devices()[: math.prod(shape)])
    state, shardings = _fresh_state(mesh)
    batch = _batch()
    abstract = abstract_batch({k: (v.shape, v.dtype) for k, v in batch.items()}, mesh)
    step = compile_step(
        make_train_step(CFG),
        shardings,
        jax.eval_shape(lambda s: s, state),
        abstract,
        mesh,
        compiler_options=None if math.prod(shape) == 1 else fast_compile.OPTIONS,
    )
    on_mesh = {k: jax.device_put(v, abstract[k].sharding) for k, v in batch.items()}
    return mesh, step, on_mesh


def _numpy(tree):
    return [np.asarray(x) for x in jax.tree.leaves(tree)]


def _with_param(params, name, fn):
    """``params`` with ``fn`` applied to the parameter whose path names ``name``."""

    def leaf(path, x):
        return fn(x) if name in jax.tree_util.keystr(path) else x

    return jax.tree_util.tree_map_with_path(leaf, params)


def test_nan_guard_skips_and_counts_then_recovers():
    mesh, step, batch = _compiled((1, 1, 1))
    state, _ = _fresh_state(mesh)
    good_params = _numpy(state.params)
    state = state.replace(params=_with_param(state.params, "no_mem_embed", lambda x: x * np.nan))
    before = _numpy((state.params, state.opt_state))
    for expected in (1, 2):
        state, metrics = step(state, batch, state.step_key())
        assert not bool(metrics["finite"]) and not np.isfinite(float(metrics["loss"]))
        assert int(state.bad_steps) == expected and int(state.skipped_steps) == expected
        for got, want in zip(_numpy((state.params, state.opt_state)), before, strict=True):
            np.testing.assert_array_equal(got, want)  # NaN where it was NaN, else unchanged
    restored = jax.tree.unflatten(jax.tree.structure(state.params), good_params)
    state = state.replace(
        params=jax.device_put(restored, jax.tree.map(lambda x: x.sharding, state.params))
    )
    state, metrics = step(state, batch, state.step_key())
    assert bool(metrics["finite"]) and np.isfinite(float(metrics["loss"]))
    assert (int(state.bad_steps), int(state.skipped_steps), int(state.step)) == (
        0,
        2,
        3,
    )
    # The optimizer took its first step (lr 0 at warm-up step 0: parameters stay).
    opt_before, opt_after = before[len(good_params) :], _numpy(state.opt_state)
    assert any(not np.array_equal(a, b) for a, b in zip(opt_after, opt_before, strict=True))
    assert all(np.isfinite(x).all() for x in opt_after)


def test_loss_falls_on_a_fixed_batch():
    mesh, step, batch = _compiled((1, 1, 1))
    state, _ = _fresh_state(mesh)
    key = state.step_key()  # the same prompts every step: one fixed objective
    losses = []
    for _ in range(10):
        state, metrics = step(state, batch, key)
        losses.append(float(metrics["loss"]))
    assert all(np.isfinite(losses)) and int(state.skipped_steps) == 0
    assert losses[-1] < 0.5 * losses[0], losses


def _three_steps(shape):
    mesh, step, batch = _compiled(shape)
    state, _ = _fresh_state(mesh)
    metrics = []
    for _ in range(3):
        state, m = step(state, batch, state.step_key())
        metrics.append((float(m["loss"]), float(m["grad_norm"])))
    return np.array(metrics), _numpy(state.params)


@functools.cache
def _single_device():
    return _three_steps((1, 1, 1))


# (2, 2, 2) has all three axes at once: batch over data x fsdp, weights over fsdp
# and tensor; (1, 8, 1) is ZeRO-3 over all 8 devices.
@pytest.mark.parametrize("shape", [(1, 8, 1), (2, 2, 2)], ids=["fsdp", "dp_fsdp_tensor"])
def test_meshes_match_single_device(shape):
    metrics_1, params_1 = _single_device()
    metrics, params = _three_steps(shape)
    np.testing.assert_allclose(metrics, metrics_1, rtol=2e-5)  # loss, gradient norm
    start = _numpy(tiny_model.initial_state()[0].params)
    for got, want, init in zip(params, params_1, start, strict=True):
        # AdamW divides by sqrt(v): an element whose gradient is near zero (summed
        # in another order) can move by up to lr per step either way. So: every
        # update within 3e-4 (a fifth of the 3 steps' lr sum), and almost all
        # of them to 1e-5.
        diff = np.abs((got - init) - (want - init))
        assert diff.max() <= 3e-4 and (diff > 1e-5).mean() < 1e-3, diff.max()
