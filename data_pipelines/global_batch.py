"""Host-local numpy batches -> global ``jax.Array``s on a mesh (STYLE.md section 3).

Every JAX process reads its own shard and holds ``[B_local, ...]`` numpy
arrays; the global batch is their concatenation along the batch axis, sharded
over the mesh's batch axes (``data`` and ``fsdp`` where the mesh has them),
built without any cross-host copy by ``jax.make_array_from_process_local_data``.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from data_pipelines.examples import MODEL_KEYS

BATCH_AXES = ("data", "fsdp")  # the mesh axes the "batch" logical axis maps to


def batch_sharding(mesh: Mesh, batch_axes: Sequence[str] = BATCH_AXES) -> NamedSharding:
    """Leading axis split over the mesh's batch axes, everything else replicated."""
    axes = tuple(a for a in batch_axes if a in mesh.axis_names)
    return NamedSharding(mesh, PartitionSpec(axes or None))


def to_global_batch(local: Mapping[str, np.ndarray], mesh: Mesh,
                    keys: Sequence[str] | None = MODEL_KEYS,
                    batch_axes: Sequence[str] = BATCH_AXES) -> dict[str, jax.Array]:
    """Assembles the global batch from every process's local batch.

    Args:
        local: this process's batch, ``[B_local, ...]`` per key.
        mesh: the training mesh.
        keys: the keys to transfer (default: what a train step takes); ``None`` for all.
        batch_axes: mesh axes the batch is split over.

    Returns:
        dict of ``jax.Array`` ``[B_local * process_count, ...]`` with `batch_sharding`.
    """
    sharding = batch_sharding(mesh, batch_axes)
    names = list(local) if keys is None else list(keys)
    return {k: jax.make_array_from_process_local_data(sharding, np.asarray(local[k]))
            for k in names}


def global_batch_shapes(local: Mapping[str, Any], mesh: Mesh,
                        keys: Sequence[str] | None = MODEL_KEYS,
                        batch_axes: Sequence[str] = BATCH_AXES) -> dict[str, jax.ShapeDtypeStruct]:
    """Abstract global batch (shapes, dtypes, shardings) to compile a step up front.

    Args:
        local: a local batch, or anything with ``.shape`` and ``.dtype`` per key.
        mesh, keys, batch_axes: as for `to_global_batch`.
    """
    sharding = batch_sharding(mesh, batch_axes)
    names = list(local) if keys is None else list(keys)
    return {k: jax.ShapeDtypeStruct((local[k].shape[0] * jax.process_count(),
                                     *local[k].shape[1:]), local[k].dtype, sharding=sharding)
            for k in names}
