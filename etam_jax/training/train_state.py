"""The training state: one pytree holding everything a resumed run needs on device.

``TrainState`` is what ``train_step(state, batch, rng)`` maps to a new state and
what the checkpoint manager saves (with the data iterators' state beside it).
Parameters are the ``nnx.State`` of the model's ``nnx.Param`` and ``Buffer``
variables (``nnx.split(model)[1]``), kept in float32 (master weights).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax
from flax import nnx, struct


@struct.dataclass
class TrainState:
    """Model parameters, optimizer state and counters.

    Attributes:
      step: int32 scalar, train steps taken (skipped non-finite steps included:
        it picks the data and the rng, so a resumed run replays the same sequence;
        the lr schedule follows the optimizer's own count of applied updates).
      params: ``nnx.State`` of the model (float32 masters).
      opt_state: the optax state of ``tx``.
      rng: PRNG key data ``uint32[2]`` (``jax.random.key_data``): the run's
        base key; each step folds in ``step``, so resuming replays the sequence.
      bad_steps: int32 scalar, consecutive steps whose loss or gradients were
        not finite (their update was skipped); reset by a good step.
      skipped_steps: int32 scalar, all skipped steps of the run.
      graphdef: the model graph (static, not a leaf).
      tx: the optax transformation (static, not a leaf).
    """

    step: jax.Array
    params: nnx.State
    opt_state: Any
    rng: jax.Array
    bad_steps: jax.Array
    skipped_steps: jax.Array
    graphdef: nnx.GraphDef = struct.field(pytree_node=False)
    tx: optax.GradientTransformation = struct.field(pytree_node=False)

    @classmethod
    def create(
        cls,
        graphdef: nnx.GraphDef,
        params: nnx.State,
        tx: optax.GradientTransformation,
        seed: int,
        opt_params: nnx.State | None = None,
    ) -> TrainState:
        """A fresh state at step 0 (call under ``jit`` with out shardings to shard it).

        ``opt_params``: the part of ``params`` the optimizer updates (default all;
        the train step passes the ``nnx.Param`` variables only).
        """
        return cls(
            step=jnp.zeros((), jnp.int32),
            params=params,
            opt_state=tx.init(params if opt_params is None else opt_params),
            rng=jax.random.key_data(jax.random.key(seed)),
            bad_steps=jnp.zeros((), jnp.int32),
            skipped_steps=jnp.zeros((), jnp.int32),
            graphdef=graphdef,
            tx=tx,
        )

    def step_key(self) -> jax.Array:
        """The PRNG key of the current step: the base key folded with ``step``."""
        return jax.random.fold_in(jax.random.wrap_key_data(self.rng), self.step)

    def model(self) -> nnx.Module:
        """The model with the current parameters (for evaluation outside the step)."""
        return nnx.merge(self.graphdef, self.params)
