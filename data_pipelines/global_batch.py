"""Host-local numpy batches -> global ``jax.Array``s on a mesh (STYLE.md section 3).

Every JAX process reads its own shard and holds ``[B_local, ...]`` numpy
arrays; the global batch is their concatenation along the batch axis, sharded
over the mesh's batch axes (``data`` and ``fsdp`` where the mesh has them),
built without any cross-host copy by ``jax.make_array_from_process_local_data``.
Bit-packed masks (``masks_packed``, see `examples`) are copied packed and
unpacked on the device, so the step always gets bool ``masks``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from data_pipelines.examples import MODEL_KEYS

BATCH_AXES = ("data", "fsdp")  # the mesh axes the "batch" logical axis maps to


def batch_sharding(mesh: Mesh, batch_axes: Sequence[str] = BATCH_AXES) -> NamedSharding:
    """Leading axis split over the mesh's batch axes, everything else replicated."""
    axes = tuple(a for a in batch_axes if a in mesh.axis_names)
    return NamedSharding(mesh, PartitionSpec(axes or None))


def unpack_masks(packed: jax.Array, sharding: NamedSharding) -> jax.Array:
    """uint8 ``[..., S / 8]`` bits (``np.packbits`` order) -> bool ``[..., S]``, on the device."""
    unpack = jax.jit(lambda x: jnp.unpackbits(x, axis=-1).astype(bool), out_shardings=sharding)
    return unpack(packed)


def to_global_batch(
    local: Mapping[str, np.ndarray],
    mesh: Mesh,
    keys: Sequence[str] | None = MODEL_KEYS,
    batch_axes: Sequence[str] = BATCH_AXES,
) -> dict[str, jax.Array]:
    """Assembles the global batch from every process's local batch.

    Args:
        local: this process's batch, ``[B_local, ...]`` per key; ``masks`` may
            come as ``masks_packed``.
        mesh: the training mesh.
        keys: the keys to transfer (default: what a train step takes); ``None`` for all.
        batch_axes: mesh axes the batch is split over.

    Returns:
        dict of ``jax.Array`` ``[B_local * process_count, ...]`` with `batch_sharding`.
    """
    sharding = batch_sharding(mesh, batch_axes)
    arrays = dict(local)
    packed = arrays.pop("masks_packed", None)
    if keys is None:
        keys = list(arrays) + (["masks"] if packed is not None and "masks" not in arrays else [])
    out = {}
    for k in keys:
        if k == "masks" and k not in arrays and packed is not None:
            out[k] = unpack_masks(
                jax.make_array_from_process_local_data(sharding, packed), sharding
            )
        else:
            out[k] = jax.make_array_from_process_local_data(sharding, np.asarray(arrays[k]))
    return out


def global_batch_shapes(
    local: Mapping[str, Any],
    mesh: Mesh,
    keys: Sequence[str] | None = MODEL_KEYS,
    batch_axes: Sequence[str] = BATCH_AXES,
) -> dict[str, jax.ShapeDtypeStruct]:
    """Abstract global batch (shapes, dtypes, shardings) to compile a step up front.

    Args:
        local: a local batch, or anything with ``.shape`` and ``.dtype`` per key.
        mesh, keys, batch_axes: as for `to_global_batch` (packed masks count as
            bool ``masks``).
    """
    sharding = batch_sharding(mesh, batch_axes)
    shapes = {k: (tuple(v.shape), np.dtype(v.dtype)) for k, v in local.items()}
    if "masks_packed" in shapes:
        shape, _ = shapes.pop("masks_packed")
        shapes["masks"] = ((*shape[:-1], shape[-1] * 8), np.dtype(bool))
    names = list(shapes) if keys is None else list(keys)
    return {
        k: jax.ShapeDtypeStruct(
            (shapes[k][0][0] * jax.process_count(), *shapes[k][0][1:]),
            shapes[k][1],
            sharding=sharding,
        )
        for k in names
    }
