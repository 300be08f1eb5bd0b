"""Checkpoints: bitwise TrainState round trips (also onto another mesh), keep-last-K,
corrupt-latest fallback, model mismatch, Grain iterator state, SIGTERM handling,
and init_from an official-layout .pt / Orbax weights directory."""

import glob
import json
import logging
import os
import signal

import grain
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest
from flax import nnx
from jax.sharding import PartitionSpec as P

from etam_jax.convert.checkpoint_io import save_orbax, write_pt
from etam_jax.convert.naming import to_torch_arrays
from etam_jax.errors import EtamError
from etam_jax.models import layers
from etam_jax.models.variables import Buffer
from etam_jax.training import checkpoints, sharding
from etam_jax.training.init_from import init_params_from
from etam_jax.training.optimizer import for_run, get_optimizer_config, make_optimizer
from etam_jax.training.preemption import PreemptionHandler
from etam_jax.training.train_state import TrainState

MODEL = "efficienttam_ti"


class Tiny(nnx.Module):
    """Linear, Conv, LayerNorm, a bare Param and a Buffer: every converter rule."""

    def __init__(self, rngs: nnx.Rngs):
        self.proj = layers.linear(16, 32, axes=("embed", "mlp"), rngs=rngs)
        self.blocks = nnx.List([layers.linear(32, 16, axes=("mlp", "embed"), rngs=rngs)])
        self.conv = layers.conv(4, 8, 3, rngs=rngs)
        self.norm = layers.layer_norm(16, rngs=rngs)
        self.token = layers.param(rngs, (1, 16), (None, "embed"))
        self.table = Buffer(jax.random.normal(rngs.params(), (8,)))


def _build(seed: int = 0) -> Tiny:
    return Tiny(nnx.Rngs(seed))


def _adamw(params):
    del params
    return optax.adamw(1e-2)


def _etam_optimizer(params):
    # clip + masked per-group AdamW, cosine over the paper's 300k steps
    return make_optimizer(for_run(get_optimizer_config("sav"), 300_000), params)


def _state(mesh, make_tx=_adamw, seed=0, steps=1) -> TrainState:
    """A TrainState after ``steps`` optimizer updates (non-trivial moments, count)."""
    graphdef, params = sharding.sharded_init(lambda: _build(seed), mesh)
    tx = make_tx(params)
    with jax.set_mesh(mesh):
        state = TrainState.create(graphdef, params, tx, seed)

        @jax.jit
        def update(state):
            grads = jax.tree.map(lambda p: jnp.sin(p) + 0.5, state.params)
            updates, opt_state = state.tx.update(grads, state.opt_state, state.params)
            params = optax.apply_updates(state.params, updates)
            return state.replace(step=state.step + 1, params=params, opt_state=opt_state)

        for _ in range(steps):
            state = update(state)
    return state


def _abstract(state, shardings=None):
    shardings = shardings or jax.tree.map(lambda x: x.sharding, state)
    return jax.tree.map(
        lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), state, shardings
    )


def _assert_bitwise(got, want):
    assert jax.tree.structure(got) == jax.tree.structure(want)
    for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(got), jax.tree.leaves(want)):
        assert a.dtype == b.dtype, path
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=str(path))


def _cfg(**kw) -> ml_collections.ConfigDict:
    cfg = checkpoints.default_config()
    cfg.update({"every_steps": 1, "keep": 3, **kw})
    return cfg


@pytest.fixture(scope="module")
def mesh8():
    return sharding.make_mesh((1, 8, 1))


@pytest.fixture(scope="module")
def state8(mesh8):
    return _state(mesh8)


def _save_steps(workdir, state, steps, model=MODEL, **cfg):
    with checkpoints.Checkpointer(workdir, _cfg(**cfg), model) as ckpt:
        for s in steps:
            ckpt.save(s, state.replace(step=jnp.int32(s)))


@pytest.fixture(scope="module")
def state8_etam(mesh8):
    return _state(mesh8, _etam_optimizer, seed=3, steps=2)


@pytest.mark.parametrize("optimizer", ["adamw", "etam"])
def test_round_trip_is_bitwise(tmp_path, request, optimizer):
    state = request.getfixturevalue("state8" if optimizer == "adamw" else "state8_etam")
    step = int(state.step)
    with checkpoints.Checkpointer(tmp_path, _cfg(), MODEL, "cfg_a") as ckpt:
        assert ckpt.restore(_abstract(state)) is None  # fresh workdir
        assert ckpt.save(step, state)
        ckpt.wait()
        assert ckpt.latest_step() == step
        got = ckpt.restore(_abstract(state))
    assert isinstance(got, TrainState) and got.tx is state.tx and got.graphdef == state.graphdef
    _assert_bitwise(got, state)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(state)):
        assert a.sharding == b.sharding
    meta = json.loads((tmp_path / "checkpoints" / str(step) / "meta" / "metadata").read_text())
    want = {"model": MODEL, "config": "cfg_a", "step": step, "format": checkpoints.FORMAT}
    assert meta == {**want, "model_config": None}  # none given here; the train loop gives its own


def test_async_save_survives_donation(tmp_path, state8):
    """``save`` returns once the arrays are on the host: the train step may
    donate (here: delete) the state's buffers while the files are written."""
    state = jax.tree.map(jnp.copy, state8)
    with checkpoints.Checkpointer(tmp_path, _cfg(async_save=True), MODEL) as ckpt:
        assert ckpt.save(1, state)
        for leaf in jax.tree.leaves(state):
            leaf.delete()
        ckpt.wait()
        got = ckpt.restore(_abstract(state8))
    _assert_bitwise(got, state8)


@pytest.mark.parametrize("optimizer", ["adamw", "etam"])
def test_restore_onto_a_smaller_mesh(tmp_path, request, optimizer):
    state = request.getfixturevalue("state8" if optimizer == "adamw" else "state8_etam")
    leaves = jax.tree.leaves(state.params)
    assert any(
        a.addressable_shards[0].data.shape[0] * 8 == a.shape[0] for a in leaves
    )  # split 8 ways
    with checkpoints.Checkpointer(tmp_path, _cfg(), MODEL) as ckpt:
        ckpt.save(int(state.step), state)
    # The restore target as the train loop builds it: shapes + shardings on the new mesh.
    mesh4 = sharding.make_mesh((1, 2, 2), jax.devices()[4:])
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), state)
    target = sharding.tree_shardings(abstract, mesh4)
    with checkpoints.Checkpointer(tmp_path, _cfg(), MODEL) as ckpt:
        got = ckpt.restore(_abstract(abstract, target))
    _assert_bitwise(got, state)
    specs = set()
    for a, s in zip(jax.tree.leaves(got), jax.tree.leaves(target)):
        assert a.sharding == s and set(a.sharding.device_set) <= set(jax.devices()[4:])
        specs.add(a.sharding.spec)
    assert P("fsdp", "tensor") in specs  # really split over the new mesh's axes


def test_every_steps_and_keep_last_k(tmp_path, state8):
    with checkpoints.Checkpointer(tmp_path, _cfg(every_steps=2, keep=2), MODEL) as ckpt:
        saved = [ckpt.save(s, state8) for s in range(1, 8)]
        assert saved == [False, True, False, True, False, True, False]
        assert ckpt.save(7, state8, force=True)  # preemption / end of training
        assert not ckpt.save(7, state8, force=True)  # already saved: no error
        ckpt.wait()
        assert ckpt.all_steps() == [6, 7]
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["6", "7"]


def _truncate_arrays(step_dir):
    files = glob.glob(str(step_dir / "state" / "**" / "d" / "*"), recursive=True)
    assert files
    for f in files:
        os.truncate(f, 7)


def _garbage_meta(step_dir):
    (step_dir / "meta" / "metadata").write_text("{not json")


def _garbage_tree_metadata(step_dir):
    (step_dir / "state" / "_METADATA").write_text("garbage")


# Orbax leaves a tensorstore callback behind after a failed read ("Event loop is closed").
QUIET_FAILED_READS = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


@QUIET_FAILED_READS
@pytest.mark.parametrize("corrupt", [_truncate_arrays, _garbage_meta, _garbage_tree_metadata])
def test_corrupt_latest_falls_back_to_previous(tmp_path, state8, caplog, corrupt):
    _save_steps(tmp_path, state8, [1, 2, 3])
    corrupt(tmp_path / "checkpoints" / "3")
    with checkpoints.Checkpointer(tmp_path, _cfg(), MODEL) as ckpt:
        with caplog.at_level(logging.WARNING, logger=checkpoints.__name__):
            got = ckpt.restore(_abstract(state8))
        assert int(got.step) == 2
        _assert_bitwise(got.params, state8.params)
        assert any("step 3" in r.getMessage() for r in caplog.records)
        # The bad one is moved aside, so step 3 can be saved again.
        assert ckpt.all_steps() == [1, 2]
        assert (tmp_path / "checkpoints" / "corrupt_3").is_dir()
        assert ckpt.save(3, state8)


def test_restore_a_chosen_step_keeps_the_newer_ones(tmp_path, state8):
    _save_steps(tmp_path, state8, [1, 2])
    with checkpoints.Checkpointer(tmp_path, _cfg(), MODEL) as ckpt:
        assert int(ckpt.restore(_abstract(state8), step=1).step) == 1
        assert ckpt.all_steps() == [1, 2]


@QUIET_FAILED_READS
def test_no_checkpoint_restores_is_a_clear_error(tmp_path, state8):
    _save_steps(tmp_path, state8, [1, 2])
    for s in ("1", "2"):
        _truncate_arrays(tmp_path / "checkpoints" / s)
    with checkpoints.Checkpointer(tmp_path, _cfg(), MODEL) as ckpt:
        with pytest.raises(EtamError, match=r"no checkpoint could be restored.*step 2.*step 1"):
            ckpt.restore(_abstract(state8))
        with pytest.raises(EtamError, match="no checkpoint at step 5; saved steps: \\[1, 2\\]"):
            ckpt.restore(_abstract(state8), step=5)


def test_checkpoint_of_another_model_names_both(tmp_path, state8):
    _save_steps(tmp_path, state8, [1], model="efficienttam_s")
    # A target that cannot hold the arrays: the meta check must come first.
    with (
        checkpoints.Checkpointer(tmp_path, _cfg(), MODEL) as ckpt,
        pytest.raises(EtamError, match="'efficienttam_s'.*'efficienttam_ti'"),
    ):
        ckpt.restore(object())


def test_bad_config_names_the_flag(tmp_path):
    with pytest.raises(EtamError, match="checkpoint.keep must be a positive integer, found 0"):
        checkpoints.Checkpointer(tmp_path, _cfg(keep=0), MODEL)


def _batches():
    return grain.MapDataset.range(100).shuffle(seed=7).batch(4).to_iter_dataset()


def test_data_iterator_resumes_the_uninterrupted_sequence(tmp_path, state8):
    uninterrupted = [b.tolist() for b in _batches()]
    it = iter(_batches())
    for _ in range(5):
        next(it)
    with checkpoints.Checkpointer(tmp_path, _cfg(), MODEL) as ckpt:
        assert ckpt.save(5, state8, it)
        after_save = [next(it).tolist() for _ in range(2)]  # the save must not move it
    assert after_save == uninterrupted[5:7]
    assert "process_0-of-1.json" in os.listdir(tmp_path / "checkpoints" / "5" / "data")
    resumed = iter(_batches())
    with checkpoints.Checkpointer(tmp_path, _cfg(), MODEL) as ckpt:
        ckpt.restore(_abstract(state8), resumed)
    assert [b.tolist() for b in resumed] == uninterrupted[5:]


def test_sigterm_sets_the_flag_and_restores_the_previous_handler():
    calls = []
    original = signal.signal(signal.SIGTERM, lambda *a: calls.append(a))
    previous = signal.getsignal(signal.SIGTERM)
    try:
        with PreemptionHandler() as handler:
            assert not handler.requested and not handler.should_stop(0)
            os.kill(os.getpid(), signal.SIGTERM)
            assert handler.requested and handler.should_stop(1)
        assert signal.getsignal(signal.SIGTERM) is previous and not calls
        os.kill(os.getpid(), signal.SIGTERM)  # the previous handler is live again
        assert len(calls) == 1
    finally:
        signal.signal(signal.SIGTERM, original)


@pytest.fixture(scope="module")
def reference_model(state8):
    """Trained (so non-default) weights as a host-side model."""
    with nnx.use_eager_sharding(False):
        return nnx.merge(state8.graphdef, jax.device_get(state8.params))


@pytest.fixture(scope="module")
def target():
    return sharding.abstract_model_and_shardings(_build, sharding.make_mesh((1, 4, 2)))


def _assert_params_equal(params, model, shardings):
    want = nnx.state(model)
    _assert_bitwise(params, want)
    for a, s in zip(jax.tree.leaves(params), jax.tree.leaves(shardings)):
        assert a.sharding == s


def test_init_from_official_pt_is_bitwise_and_sharded(tmp_path, reference_model, target):
    graphdef, abstract, shardings = target
    path = tmp_path / "official.pt"
    write_pt(to_torch_arrays(reference_model), path)
    params = init_params_from(path, MODEL, graphdef, abstract)
    _assert_params_equal(params, reference_model, shardings)
    assert any(a.sharding.spec == P(None, None, None, "tensor") for a in jax.tree.leaves(params))


def test_init_from_orbax_weights_dir(tmp_path, reference_model, target):
    graphdef, abstract, shardings = target
    save_orbax(reference_model, MODEL, tmp_path / "weights")
    params = init_params_from(tmp_path / "weights", MODEL, graphdef, abstract)
    _assert_params_equal(params, reference_model, shardings)
    with pytest.raises(EtamError, match="'efficienttam_ti', not 'efficienttam_s'"):
        init_params_from(tmp_path / "weights", "efficienttam_s", graphdef, abstract)


def test_init_from_errors_name_file_and_key(tmp_path, reference_model, target):
    graphdef, abstract, _ = target
    arrays = to_torch_arrays(reference_model)
    arrays["proj.wieght"] = arrays.pop("proj.weight")
    path = tmp_path / "renamed.pt"
    write_pt(arrays, path)
    with pytest.raises(EtamError, match=f"{path}: missing key 'proj.weight'"):
        init_params_from(path, MODEL, graphdef, abstract)
    with pytest.raises(EtamError, match="missing.pt: no such checkpoint"):
        init_params_from(tmp_path / "missing.pt", MODEL, graphdef, abstract)
