"""Sharding: golden PartitionSpecs, sharded init placement, uneven-dim fallback,
and forward+grad equality across meshes on 8 fake CPU devices."""

import importlib.util
import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx
from jax.sharding import PartitionSpec as P

from etam_jax.errors import EtamError
from etam_jax.models.configs import get_model_config
from etam_jax.models.memory_encoder import MemoryEncoder
from etam_jax.training import mesh_presets, sharding

ROOT = pathlib.Path(__file__).resolve().parents[2]


def _regen_script():
    spec = importlib.util.spec_from_file_location(
        "regen", ROOT / "scripts" / "regen_golden_partition_specs.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", ["efficienttam_ti", "efficienttam_s"])
def test_partition_specs_match_golden(name):
    golden = json.loads((ROOT / "tests" / "golden" / f"partition_specs_{name}.json").read_text())
    got = _regen_script().partition_specs_json(name)
    assert sorted(got) == sorted(golden)
    diff = {k: (got[k], golden[k]) for k in golden if got[k] != golden[k]}
    assert not diff, f"PartitionSpecs changed (regenerate only on purpose): {diff}"
    # Sanity of the pinned table itself: the big matrices really are split.
    assert golden["image_encoder.trunk.blocks.0.mlp.layers.0.kernel"] == [
        "fsdp",
        "tensor",
    ]
    assert golden["image_encoder.trunk.blocks.0.attn.proj.kernel"] == ["tensor", "fsdp"]


def test_every_parameter_has_logical_names():
    from etam_jax.models.build import abstract_model

    state = nnx.state(abstract_model("efficienttam_s"), nnx.Param)
    unnamed = [
        ".".join(map(str, path))
        for path, var in nnx.to_flat_state(state)
        if not var.get_metadata().get("out_sharding")
    ]
    assert not unnamed


def test_logical_spec_rules_and_uneven_fallback():
    mesh = sharding.make_mesh((2, 2, 2))
    assert sharding.logical_spec("embed", "mlp") == P("fsdp", "tensor")
    assert sharding.logical_spec("batch", None, "embed") == P(
        ("data", "fsdp"), None, None
    )  # fsdp used once
    assert sharding.logical_spec("embed", "mlp", shape=(6, 4), mesh=mesh) == P("fsdp", "tensor")
    assert sharding.logical_spec("embed", "mlp", shape=(3, 4), mesh=mesh) == P(None, "tensor")
    assert sharding.logical_spec("batch", "mlp", shape=(6, 5), mesh=mesh) == P(None, None)  # 6 % 4
    with pytest.raises(EtamError, match="'channels' has no entry"):
        sharding.logical_spec("channels")


def test_constrain_activations_by_logical_names():
    x = np.zeros((8, 6, 4), np.float32)
    assert sharding.constrain(x, "batch", None, "embed") is x  # no mesh: a no-op
    mesh = sharding.make_mesh((2, 2, 2))
    with sharding.mesh_context(mesh):
        out = jax.jit(lambda a: sharding.constrain(a * 2, "batch", None, "mlp"))(x)
        uneven = jax.jit(lambda a: sharding.constrain(a * 2, "batch", "mlp", None))(x[:6, :3])
        with pytest.raises(EtamError, match="2 logical names"):
            sharding.constrain(x, "batch", None)
    assert out.sharding.spec == P(("data", "fsdp"), None, "tensor")
    assert {s.data.shape for s in out.addressable_shards} == {(2, 6, 2)}
    assert uneven.sharding.spec in (
        P(),
        P(None, None, None),
    )  # 6 % 4 and 3 % 2: replicated


def test_uneven_parameter_is_replicated_and_placed():
    mesh = sharding.make_mesh((1, 4, 2))

    def build():
        return nnx.Linear(
            6,
            3,
            rngs=nnx.Rngs(0),
            kernel_init=nnx.with_partitioning(nnx.initializers.ones_init(), ("embed", "mlp")),
        )

    _, state = sharding.sharded_init(build, mesh)
    assert state["kernel"].get_value().sharding.spec == P(None, None)  # 6 % 4 and 3 % 2
    np.testing.assert_array_equal(np.asarray(state["kernel"].get_value()), np.ones((6, 3)))


def test_make_mesh_and_presets_check_sizes():
    mesh = sharding.make_mesh((2, 2, 2))
    assert mesh.axis_names == sharding.MESH_AXES
    assert all(t == jax.sharding.AxisType.Auto for t in mesh.axis_types)
    with pytest.raises(EtamError, match="needs 4 devices, found 8"):
        sharding.make_mesh((2, 2, 1))
    assert mesh_presets.mesh_shape("cpu-2x2x2", 8) == (2, 2, 2)
    assert mesh_presets.mesh_shape("v5p-64") == (
        8,
        4,
        1,
    )  # 32 chips, fsdp over a 4-chip host
    assert mesh_presets.mesh_shape("v5e-8") == (1, 8, 1)
    assert mesh_presets.mesh_shape("auto", 8) == (8, 1, 1)
    with pytest.raises(EtamError, match="unknown mesh preset 'v9-8'"):
        mesh_presets.mesh_shape("v9-8")
    with pytest.raises(EtamError, match="needs 8 devices, found 4"):
        mesh_presets.mesh_shape("cpu-dp8", 4)


def _build_memory_encoder():
    return MemoryEncoder(get_model_config("efficienttam_ti", 64).memory_encoder, rngs=nnx.Rngs(3))


def test_sharded_init_places_shards_and_matches_unsharded_init():
    mesh = sharding.make_mesh((2, 2, 2))
    _, state = sharding.sharded_init(_build_memory_encoder, mesh)
    with nnx.use_eager_sharding(False):
        reference = nnx.state(_build_memory_encoder())
    split = 0
    for (path, var), (_, ref) in zip(
        nnx.to_flat_state(state), nnx.to_flat_state(reference), strict=True
    ):
        value = var.get_value()
        spec = sharding.logical_spec(
            *var.get_metadata()["out_sharding"], shape=value.shape, mesh=mesh
        )
        assert value.sharding.spec == spec, path
        want = sharding.shard_shape(value.shape, spec, mesh)
        assert {s.data.shape for s in value.addressable_shards} == {want}, path
        split += want != value.shape  # a sharded parameter is never whole on a device
        np.testing.assert_array_equal(
            np.asarray(value), np.asarray(ref.get_value()), err_msg=str(path)
        )
    assert split >= 8  # convs over tensor, pwconvs over fsdp x tensor


def test_optimizer_state_shards_like_its_parameters():
    mesh = sharding.make_mesh((1, 4, 2))
    _, abs_params, param_shardings = sharding.abstract_model_and_shardings(
        _build_memory_encoder, mesh
    )
    tx = optax.adamw(1e-3)
    opt_shardings = sharding.tree_shardings(jax.eval_shape(tx.init, abs_params), mesh)
    count, mu, nu = opt_shardings[0].count, opt_shardings[0].mu, opt_shardings[0].nu
    assert count.spec == P()
    for moments in (mu, nu):
        assert jax.tree.structure(moments) == jax.tree.structure(param_shardings)
        assert jax.tree.leaves(moments) == jax.tree.leaves(param_shardings)
    assert P("fsdp", "tensor") in {s.spec for s in jax.tree.leaves(mu)}


def _loss_and_grads(graphdef, params, pix, masks):
    def loss_fn(p):
        out = nnx.merge(graphdef, p)(pix, masks)
        return jnp.mean(out["vision_features"] ** 2) + jnp.mean(jnp.tanh(out["vision_features"]))

    return jax.value_and_grad(loss_fn)(params)


def _inputs():
    rng = np.random.default_rng(0)
    return rng.standard_normal((8, 4, 4, 256), np.float32), rng.standard_normal(
        (8, 64, 64, 1), np.float32
    )


@pytest.fixture(scope="module")
def single_device_result():
    with nnx.use_eager_sharding(False):
        graphdef, params = nnx.split(_build_memory_encoder())
    loss, grads = jax.jit(lambda p, x, m: _loss_and_grads(graphdef, p, x, m))(params, *_inputs())
    return graphdef, params, float(loss), grads


@pytest.mark.parametrize("shape", [(8, 1, 1), (1, 8, 1), (1, 4, 2)], ids=["dp", "fsdp", "fsdp_tp"])
def test_forward_grad_matches_single_device(single_device_result, shape):
    graphdef, params, loss_1, grads_1 = single_device_result
    mesh = sharding.make_mesh(shape)
    shardings = sharding.tree_shardings(params, mesh)
    data = sharding.batch_sharding(mesh, 4)
    with jax.set_mesh(mesh):
        step = jax.jit(
            lambda p, x, m: _loss_and_grads(graphdef, p, x, m),
            in_shardings=(shardings, data, data),
            out_shardings=(None, shardings),
        )
        loss, grads = step(jax.device_put(params, shardings), *_inputs())
    np.testing.assert_allclose(float(loss), loss_1, rtol=1e-5)
    for (path, g), (_, g1) in zip(
        nnx.to_flat_state(grads), nnx.to_flat_state(grads_1), strict=True
    ):
        got, want = np.asarray(g.get_value()), np.asarray(g1.get_value())
        scale = np.abs(want).max() + 1e-12
        assert np.abs(got - want).max() / scale < 1e-5, path
