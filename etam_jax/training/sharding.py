"""The device mesh and the one table mapping logical axis names onto it.

This is the ONLY file that names mesh axes. Model code names parameter axes
logically (``etam_jax/models/layers.py``: ``embed``, ``mlp``, ``heads``, ...);
``RULES`` maps each logical name to mesh axes, as MaxText's
``logical_axis_rules`` and big_vision's ``logical_partitioning`` do.

Specs are computed here (``logical_spec``) rather than by Flax's rule
application (``nnx.get_partition_spec`` / ``nnx.get_abstract_model`` /
eager sharding), which maps names blindly. Two cases need more:

- a dimension whose size does not divide its mesh axes is replicated (the
  object-score head's 1-wide output over ``fsdp``; ``jax.jit`` rejects
  uneven shardings);
- a mesh axis is used at most once per array (the hidden layers of the SAM
  heads' MLPs are ``("mlp", "mlp")``; Flax yields ``P("tensor", "tensor")``,
  a ``DuplicateSpecError``).

So build models with eager sharding off and place them with
``sharded_init`` (or ``abstract_model_and_shardings`` + ``jax.jit``), not
eagerly inside ``mesh_context``.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence

import jax
import numpy as np
from flax import nnx
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

from etam_jax.errors import EtamError

MESH_AXES = ("data", "fsdp", "tensor")

MeshAxes = str | tuple[str, ...] | None

# Logical name -> mesh axes. Parameters: ``embed`` over fsdp (ZeRO-3 style),
# hidden/head widths over tensor (Megatron style); small vectors replicated.
# Activations: ``batch`` over data and fsdp together (fsdp is data parallel
# for activations).
RULES: tuple[tuple[str, MeshAxes], ...] = (
    ("batch", ("data", "fsdp")),
    ("embed", "fsdp"),
    ("mlp", "tensor"),
    ("heads", "tensor"),
    ("kv", None),
    ("conv_in", None),
    ("conv_out", "tensor"),
    ("norm", None),
    ("tokens", None),
    ("pos", None),
)


def make_mesh(shape: Sequence[int], devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A (data, fsdp, tensor) mesh with Auto axis types.

    Auto is passed explicitly: jax 0.10's ``make_mesh`` defaults to Explicit,
    where FSDP-sharded weights times batch-sharded activations is a type error.

    Args:
      shape: three sizes (data, fsdp, tensor) whose product is the device count.
      devices: the devices to use (default: all of ``jax.devices()``).
    """
    shape = tuple(int(s) for s in shape)
    devices = list(jax.devices() if devices is None else devices)
    if len(shape) != len(MESH_AXES) or min(shape, default=0) < 1:
        raise EtamError(f"mesh shape must be 3 positive sizes {MESH_AXES}, found {shape}")
    if math.prod(shape) != len(devices):
        raise EtamError(
            f"mesh shape {dict(zip(MESH_AXES, shape))} needs {math.prod(shape)} devices, "
            f"found {len(devices)}"
        )
    axis_types = (AxisType.Auto,) * len(MESH_AXES)
    return jax.make_mesh(shape, MESH_AXES, axis_types=axis_types, devices=devices)


@contextlib.contextmanager
def mesh_context(mesh: Mesh, rules=RULES) -> Iterator[Mesh]:
    """``jax.set_mesh(mesh)`` plus ``nnx.logical_axis_rules(rules)``: the
    context a train step runs in (``constrain`` reads the mesh from it)."""
    with jax.set_mesh(mesh), nnx.logical_axis_rules(rules):
        yield mesh


def _rule_table(rules: Sequence[tuple[str, MeshAxes]]) -> dict[str, tuple[str, ...]]:
    table = {}
    for name, axes in rules:
        table[name] = () if axes is None else (axes,) if isinstance(axes, str) else tuple(axes)
    return table


def logical_spec(
    *names: str | None,
    shape: Sequence[int] | None = None,
    mesh: Mesh | jax.sharding.AbstractMesh | None = None,
    rules: Sequence[tuple[str, MeshAxes]] = RULES,
) -> PartitionSpec:
    """The PartitionSpec for an array whose axes carry logical ``names``.

    A mesh axis is used at most once (the first dimension claiming it wins).
    Given ``shape`` and ``mesh``, a dimension whose size is not divisible by
    its mesh axes' total size is replicated.

    Raises:
      EtamError: a logical name missing from ``rules``.
    """
    table = _rule_table(rules)
    used: set[str] = set()
    spec: list[MeshAxes] = []
    for dim, name in enumerate(names):
        if name is None:
            spec.append(None)
            continue
        if name not in table:
            raise EtamError(
                f"logical axis {name!r} has no entry in the sharding rules {sorted(table)}"
            )
        axes = tuple(a for a in table[name] if a not in used)
        sized = axes and shape is not None and mesh is not None
        if sized and shape[dim] % math.prod(mesh.shape[a] for a in axes):
            axes = ()  # uneven: replicate this dimension
        used.update(axes)
        spec.append(None if not axes else axes[0] if len(axes) == 1 else axes)
    return PartitionSpec(*spec)


def constrain(x: jax.Array, *names: str | None) -> jax.Array:
    """``with_sharding_constraint`` by logical names under the current mesh.

    For activations at block boundaries, e.g. ``constrain(x, "batch", None, None, "embed")``.
    A no-op outside a mesh context (single-device inference and tests).
    """
    mesh = jax.sharding.get_abstract_mesh()
    if mesh.empty:
        return x
    if len(names) != x.ndim:
        raise EtamError(
            f"constrain: {len(names)} logical names {names} for an array of shape {x.shape}"
        )
    return jax.lax.with_sharding_constraint(x, logical_spec(*names, shape=x.shape, mesh=mesh))


def _variable_spec(variable: nnx.Variable, mesh: Mesh, rules) -> PartitionSpec:
    names = variable.get_metadata().get("out_sharding")
    shape = variable.get_value().shape
    if not names:
        return PartitionSpec()
    if len(names) != len(shape):
        raise EtamError(f"logical names {names} do not match a parameter of shape {shape}")
    return logical_spec(*names, shape=shape, mesh=mesh, rules=rules)


def tree_shardings(tree, mesh: Mesh, rules=RULES):
    """A NamedSharding per leaf of ``tree``: each ``nnx.Variable`` by its
    logical names, any other array replicated.

    Works for parameter states and for optax states built from them (Adam's
    ``mu``/``nu`` keep the Variables, so they shard like their parameters;
    step counts are replicated; ``optax.multi_transform``'s masked-out
    entries, Variables holding an empty ``MaskedNode``, stay as they are).
    """

    def leaf(x):
        if isinstance(x, nnx.Variable) and not hasattr(x.get_value(), "shape"):
            return x  # no array inside (optax MaskedNode): nothing to place
        if isinstance(x, nnx.Variable):
            return x.replace(NamedSharding(mesh, _variable_spec(x, mesh, rules)))
        return NamedSharding(mesh, PartitionSpec())

    return jax.tree.map(leaf, tree, is_leaf=lambda x: isinstance(x, nnx.Variable))


def abstract_model_and_shardings(
    build_fn: Callable[[], nnx.Module], mesh: Mesh, rules=RULES
) -> tuple[nnx.GraphDef, nnx.State, nnx.State]:
    """Graph, abstract state and a NamedSharding per variable, without compute.

    Returns:
      ``(graphdef, abstract_state, shardings)``; the abstract leaves are
      ``ShapeDtypeStruct``s carrying their sharding.
    """
    with nnx.use_eager_sharding(False):
        abstract = nnx.eval_shape(build_fn)
    graphdef, abs_state = nnx.split(abstract)
    shardings = tree_shardings(abs_state, mesh, rules)
    abs_state = jax.tree.map(
        lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
        abs_state,
        shardings,
    )
    return graphdef, abs_state, shardings


def sharded_init(
    build_fn: Callable[[], nnx.Module], mesh: Mesh, rules=RULES
) -> tuple[nnx.GraphDef, nnx.State]:
    """Initialise a model directly into its shards (no full copy on one device).

    As big_vision's ``train.py`` (``jax.eval_shape`` + ``jit(out_shardings=)``):
    the initialiser runs under ``jax.jit`` whose outputs are laid out by the
    rules, so XLA computes each shard where it lives.
    """
    graphdef, _, shardings = abstract_model_and_shardings(build_fn, mesh, rules)

    def init() -> nnx.State:
        with nnx.use_eager_sharding(False):
            return nnx.state(build_fn())

    with jax.set_mesh(mesh):
        state = jax.jit(init, out_shardings=shardings)()
    return graphdef, state


def batch_sharding(mesh: Mesh, ndim: int) -> NamedSharding:
    """Leading axis over (data, fsdp), the rest replicated: the global batch layout."""
    return NamedSharding(mesh, logical_spec("batch", *([None] * (ndim - 1))))


def spec_to_json(spec: PartitionSpec) -> list:
    """A PartitionSpec as JSON (``None``, a mesh axis, or a list of them per dim)."""
    return [list(p) if isinstance(p, tuple) else p for p in spec]


def shard_shape(shape: Sequence[int], spec: PartitionSpec, mesh: Mesh) -> tuple[int, ...]:
    """The per-device shape of an array of ``shape`` laid out by ``spec`` on ``mesh``."""
    out = list(shape)
    for dim, axes in enumerate(spec):
        axes = () if axes is None else (axes,) if isinstance(axes, str) else axes
        out[dim] //= int(np.prod([mesh.shape[a] for a in axes], dtype=np.int64))
    return tuple(out)
