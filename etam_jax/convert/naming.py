"""The generic Flax <-> PyTorch naming rule.

Our module attribute paths equal the official torch module paths, so a torch
key is the Flax path joined by dots, with the leaf renamed and the array
re-laid-out according to the Flax module that owns it:

=================  ==================  =========================
Flax owner.leaf     torch leaf          array, flax -> torch
=================  ==================  =========================
Linear.kernel       weight (out, in)    ``.T``
Conv.kernel (HWIO)  weight (OIHW)       ``transpose(3, 2, 0, 1)``
LayerNorm.scale     weight              --
Embed.embedding     weight              --
anything else       same name           --
=================  ==================  =========================

Only ``nnx.Param`` and :class:`~etam_jax.models.variables.Buffer` leaves are
converted. No per-key table: a new module converts as soon as it mirrors the
official names.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import numpy as np
from flax import nnx

from etam_jax.errors import EtamError
from etam_jax.models.variables import Buffer

# (owner type, flax leaf) -> (torch leaf, axes permutation flax -> torch or None)
_LEAF_RULES: dict[tuple[type, str], tuple[str, tuple[int, ...] | None]] = {
    (nnx.Linear, "kernel"): ("weight", (1, 0)),
    (nnx.Conv, "kernel"): ("weight", (3, 2, 0, 1)),
    (nnx.LayerNorm, "scale"): ("weight", None),
    (nnx.Embed, "embedding"): ("weight", None),
}


@dataclass(frozen=True)
class Leaf:
    """One convertible variable: where it sits in Flax and what torch calls it."""

    variable: nnx.Variable
    torch_key: str
    to_torch_axes: tuple[int, ...] | None

    @property
    def torch_shape(self) -> tuple[int, ...]:
        shape = tuple(self.variable.shape)
        if self.to_torch_axes is None:
            return shape
        return tuple(shape[a] for a in self.to_torch_axes)


def _rule(owner: object, leaf: str) -> tuple[str, tuple[int, ...] | None]:
    for (kind, name), rule in _LEAF_RULES.items():
        if isinstance(owner, kind) and leaf == name:
            return rule
    return leaf, None


def iter_leaves(module: nnx.Module, prefix: str = "") -> Iterator[Leaf]:
    """Yields every convertible variable of ``module`` with its torch key.

    Args:
      module: the Flax module (a whole model or one component).
      prefix: the torch path of ``module`` in the full model, e.g.
        ``"image_encoder."``; keys are ``prefix + path``.
    """
    nodes = dict(nnx.iter_graph(module))
    for path, node in nodes.items():
        if not isinstance(node, (nnx.Param, Buffer)):
            continue
        owner = nodes[path[:-1]]
        leaf, axes = _rule(owner, str(path[-1]))
        key = ".".join([*(str(p) for p in path[:-1]), leaf])
        yield Leaf(node, prefix + key, axes)


def to_torch_arrays(module: nnx.Module, prefix: str = "") -> dict[str, np.ndarray]:
    """The module's weights as numpy arrays under official torch keys and layouts."""
    out = {}
    for leaf in iter_leaves(module, prefix):
        value = np.asarray(leaf.variable.get_value())
        out[leaf.torch_key] = (
            value if leaf.to_torch_axes is None else value.transpose(leaf.to_torch_axes)
        )
    return out


def check_keys_and_shapes(
    module: nnx.Module, arrays: Mapping[str, object], prefix: str = "", source: str = "state dict"
) -> list[Leaf]:
    """Raises EtamError on a missing key, unexpected key or wrong shape.

    ``arrays`` maps torch keys to anything with ``.shape``. Only keys under
    ``prefix`` are considered. Returns the module's leaves in order.
    """
    leaves = list(iter_leaves(module, prefix))
    expected = {leaf.torch_key: leaf for leaf in leaves}
    given = {k for k in arrays if k.startswith(prefix)}
    missing = sorted(set(expected) - given)
    if missing:
        leaf = expected[missing[0]]
        raise EtamError(
            f"{source}: missing key {missing[0]!r} (expected shape {list(leaf.torch_shape)})"
            + (f" and {len(missing) - 1} more" if len(missing) > 1 else "")
        )
    unexpected = sorted(given - set(expected))
    if unexpected:
        raise EtamError(
            f"{source}: unexpected key {unexpected[0]!r} with shape {list(arrays[unexpected[0]].shape)}"
            + (f" and {len(unexpected) - 1} more" if len(unexpected) > 1 else "")
        )
    for leaf in leaves:
        found = tuple(arrays[leaf.torch_key].shape)
        if found != leaf.torch_shape:
            raise EtamError(
                f"{source}: key {leaf.torch_key!r} has shape {list(found)}, "
                f"expected {list(leaf.torch_shape)}"
            )
    return leaves


def load_torch_arrays(
    module: nnx.Module, arrays: Mapping[str, object], prefix: str = "", source: str = "state dict"
) -> None:
    """Writes torch-keyed arrays into ``module``'s variables (all checked first).

    Nothing is written unless every key and shape matches, so a failed load
    leaves the module untouched. Arrays keep their dtype.
    """
    leaves = check_keys_and_shapes(module, arrays, prefix, source)
    for leaf in leaves:
        value = np.asarray(arrays[leaf.torch_key])
        if leaf.to_torch_axes is not None:
            value = value.transpose(np.argsort(leaf.to_torch_axes))
        leaf.variable.set_value(np.ascontiguousarray(value))
