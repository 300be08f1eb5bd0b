"""Process bodies for the multi-host train-step test (run by tests/multiprocess.py)."""

from __future__ import annotations

import numpy as np

from tests.training.tiny_batches import blob_batch

TINY = "experiments/configs/tiny.py"


def train_steps(coordinator: str, num_processes: int, process_id: int, steps: int, batch: int):
    """``steps`` train steps of the tiny config on a (2, 2, 2) mesh over all processes' devices.

    Every process makes the same global batch from a seed and hands JAX the rows its
    devices hold (``make_array_from_callback``); returns the losses and, per
    parameter, the sum of absolute values after the last step (gathered to every process).
    """
    from etam_jax.training import distributed

    if num_processes > 1:
        distributed.initialize(coordinator, num_processes, process_id)
    import jax
    from flax import nnx
    from jax.experimental import multihost_utils

    from etam_jax.models.build import build_model
    from etam_jax.training import sharding
    from etam_jax.training.config_loader import load_config
    from etam_jax.training.train_step import (
        abstract_batch,
        compile_step,
        init_state,
        make_train_step,
    )

    cfg = load_config(TINY, ["--config.data.sources.sav.path=unused"])
    mesh = sharding.make_mesh((2, 2, 2))
    state, shardings = init_state(lambda: build_model(cfg.model, rngs=nnx.Rngs(0)), cfg, mesh)
    host = blob_batch(batch, 2, 1, cfg.model.image_size, seed=0)
    shapes = abstract_batch({k: (v.shape, v.dtype) for k, v in host.items()}, mesh)
    arrays = {
        k: jax.make_array_from_callback(v.shape, shapes[k].sharding, lambda idx, v=v: v[idx])
        for k, v in host.items()
    }
    abstract = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), state
    )
    step = compile_step(make_train_step(cfg), shardings, abstract, shapes, mesh)
    losses = []
    for _ in range(steps):
        state, metrics = step(state, arrays, state.step_key())
        losses.append(float(np.asarray(metrics["loss"].addressable_data(0))))  # replicated
    params = multihost_utils.process_allgather(state.params, tiled=True)
    sums = {
        ".".join(map(str, path)): float(np.abs(np.asarray(leaf, np.float64)).sum())
        for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]
    }
    return {"losses": losses, "param_abs_sums": sums}
