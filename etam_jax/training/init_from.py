"""Initial weights of a fresh run (``--config.checkpoint.init_from``).

Any checkpoint every ``--checkpoint`` reads (an official ``.pt`` file, an etam
weights directory, another run's workdir or step folder: the paper's stage 2
starts from stage 1's workdir) is read on the host by the same code as ``etam
track`` (``convert.checkpoint_io.load_weights``: every key and shape checked) and then placed shard
by shard with the training shardings (``jax.make_array_from_callback``, which
each process evaluates for its own devices only).
"""

from __future__ import annotations

import os

import jax
import numpy as np
from flax import nnx

from etam_jax.convert.checkpoint_io import WEIGHTS, load_weights
from etam_jax.errors import EtamError


def _check_weights_only(abstract_params: nnx.State, path: str | os.PathLike) -> None:
    """Every variable must come from the checkpoint: no other kinds may stay zero."""
    for key, var in nnx.to_flat_state(abstract_params):
        if not isinstance(var, WEIGHTS):
            name = ".".join(map(str, key))
            raise EtamError(
                f"{path}: cannot initialise {name!r} ({type(var).__name__}) from a weights "
                "checkpoint; only nnx.Param and Buffer variables are stored there"
            )


def _place(value: np.ndarray, target: jax.ShapeDtypeStruct) -> jax.Array:
    value = np.asarray(value, dtype=target.dtype)  # float32 masters whatever the file holds
    if target.sharding is None:
        return jax.device_put(value)
    return jax.make_array_from_callback(target.shape, target.sharding, lambda index: value[index])


def init_params_from(
    path: str | os.PathLike,
    model_name: str,
    graphdef: nnx.GraphDef,
    abstract_params: nnx.State,
) -> nnx.State:
    """The model's parameters read from ``path``, laid out like ``abstract_params``.

    Args:
      path: an official ``{"model": state_dict}`` ``.pt`` file, an etam weights
        directory (``etam convert from-pytorch``) or an ``etam train`` workdir /
        ``checkpoints/<step>`` (its params only).
      model_name: the official model name (an Orbax directory of another
        model is an error).
      graphdef: the model graph (``nnx.split(model)[0]``).
      abstract_params: the model state with ``jax.ShapeDtypeStruct`` leaves
        carrying the target shardings
        (``sharding.abstract_model_and_shardings``).

    Returns:
      The ``nnx.State`` of ``jax.Array``s, with the structure of ``abstract_params``.

    Raises:
      EtamError: a missing or unreadable file, another model's directory, a
        missing/unexpected key or a wrong shape (naming the file and key).
    """
    _check_weights_only(abstract_params, path)
    host = jax.tree.map(lambda a: np.zeros(a.shape, a.dtype), abstract_params)
    with nnx.use_eager_sharding(False):  # host arrays; placed below
        model = nnx.merge(graphdef, host)
    load_weights(model, model_name, path)
    return jax.tree.map(_place, nnx.state(model), abstract_params)
