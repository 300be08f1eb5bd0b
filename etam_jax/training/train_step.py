"""``train_step(state, batch, rng) -> (state, metrics)`` and its sharded compilation.

The step differentiates the clip loss (`clip_forward.clip_loss`) with respect to
the model's ``nnx.Param`` variables (buffers such as the prompt encoder's Fourier
matrix are not trained, as in the official model), applies the optax update,
and guards against non-finite values: if the loss or the gradient norm is NaN
or infinite, the update is skipped (parameters and optimizer state unchanged)
and counted in ``bad_steps`` (consecutive) and ``skipped_steps`` (total); the
loop stops after K bad steps in a row.

Compilation is up front, per batch shape (image batches and clip batches are
different shapes, so each gets its own executable), with explicit in/out
shardings and the state donated (STYLE.md section 3; MaxText's
``train_step`` jit).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from etam_jax.training import sharding
from etam_jax.training.clip_forward import clip_loss
from etam_jax.training.optimizer import for_run, make_optimizer, make_schedule
from etam_jax.training.train_state import TrainState

Batch = Mapping[str, jax.Array]


def split_trainable(params: nnx.State) -> tuple[nnx.State, nnx.State]:
    """``(trainable, frozen)``: the ``nnx.Param`` variables, and the rest (buffers)."""
    return nnx.split_state(params, nnx.Param, ...)


def make_tx(cfg: ml_collections.ConfigDict, params: nnx.State) -> optax.GradientTransformation:
    """The optimizer of ``cfg.optimizer`` over the trainable part of ``params``."""
    return make_optimizer(run_optimizer_config(cfg), split_trainable(params)[0])


def run_optimizer_config(cfg: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """``cfg.optimizer`` whose ``total_steps`` follows ``cfg.train.total_steps`` unless set."""
    return for_run(cfg.optimizer, cfg.train.total_steps)


def create_state(graphdef, params, tx, seed: int) -> TrainState:
    """A step-0 `TrainState` whose optimizer state covers the trainable params only."""
    return TrainState.create(graphdef, params, tx, seed, opt_params=split_trainable(params)[0])


def _keep_if(finite: jax.Array, new, old):
    """``new`` where the step was finite, else ``old`` (leafwise select)."""
    return jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, old)


def make_train_step(cfg: ml_collections.ConfigDict) -> Callable[..., tuple[TrainState, dict]]:
    """The pure train step for a training config (``prompts``, ``loss``, ``optimizer``, ``remat``)."""
    lr_schedule = make_schedule(run_optimizer_config(cfg), cfg.optimizer.lr)

    def train_step(state: TrainState, batch: Batch, rng: jax.Array):
        trainable, frozen = split_trainable(state.params)

        def loss_of(p):
            model = nnx.merge(state.graphdef, p, frozen)
            return clip_loss(model, batch, rng, cfg)

        (loss, metrics), grads = jax.value_and_grad(loss_of, has_aux=True)(trainable)
        grad_norm = optax.tree.norm(grads)
        finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
        updates, opt_state = state.tx.update(grads, state.opt_state, trainable)
        new_trainable = _keep_if(finite, optax.apply_updates(trainable, updates), trainable)
        new_state = state.replace(
            step=state.step + 1,
            params=nnx.merge_state(new_trainable, frozen),
            opt_state=_keep_if(finite, opt_state, state.opt_state),
            bad_steps=jnp.where(finite, 0, state.bad_steps + 1),
            skipped_steps=state.skipped_steps + (~finite).astype(jnp.int32),
        )
        metrics = {
            **metrics,
            "loss": loss,
            "grad_norm": grad_norm,
            "lr": lr_schedule(state.step),
            "finite": finite,
        }
        return new_state, metrics

    return train_step


def state_shardings(abstract_state: TrainState, mesh: Mesh) -> TrainState:
    """A NamedSharding per state leaf: params and optimizer moments by their logical
    names (`sharding.tree_shardings`), scalars replicated."""
    return sharding.tree_shardings(abstract_state, mesh)


def plan_state(
    build_fn: Callable[[], nnx.Module],
    cfg: ml_collections.ConfigDict,
    mesh: Mesh,
) -> tuple[Callable[[], TrainState], TrainState, TrainState]:
    """How to make the state, without computing it.

    Returns:
      ``(init, abstract, shardings)``: ``init()`` builds a step-0 state (run it under
      ``jit(out_shardings=shardings)``), ``abstract`` has ``ShapeDtypeStruct`` leaves
      carrying their target sharding (what a checkpoint restore needs).
    """
    graphdef, abstract_params, _ = sharding.abstract_model_and_shardings(build_fn, mesh)
    tx = make_tx(cfg, abstract_params)

    def init() -> TrainState:
        with nnx.use_eager_sharding(False):
            params = nnx.state(build_fn())
        return create_state(graphdef, params, tx, cfg.seed)

    abstract = jax.eval_shape(init)
    shardings = state_shardings(abstract, mesh)
    abstract = jax.tree.map(
        lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract, shardings
    )
    return init, abstract, shardings


def init_state(
    build_fn: Callable[[], nnx.Module],
    cfg: ml_collections.ConfigDict,
    mesh: Mesh,
    compiler_options: Mapping[str, Any] | None = None,
) -> tuple[TrainState, TrainState]:
    """A freshly initialised, sharded `TrainState` (no full copy on one device).

    ``compiler_options``: XLA options for compiling the initialiser (``jax.jit``'s).

    Returns:
      ``(state, shardings)``.
    """
    init, _, shardings = plan_state(build_fn, cfg, mesh)
    with jax.set_mesh(mesh):
        state = jax.jit(init, out_shardings=shardings, compiler_options=compiler_options)()
    return state, shardings


def abstract_batch(shapes: Mapping[str, tuple[tuple[int, ...], Any]], mesh: Mesh) -> dict:
    """``ShapeDtypeStruct``s of a global batch (``{key: (shape, dtype)}``) on ``mesh``."""
    return {
        k: jax.ShapeDtypeStruct(shape, dtype, sharding=sharding.batch_sharding(mesh, len(shape)))
        for k, (shape, dtype) in shapes.items()
    }


def compile_step(
    step: Callable,
    state_sharding: TrainState,
    abstract_state: TrainState,
    batch: Mapping[str, jax.ShapeDtypeStruct],
    mesh: Mesh,
    compiler_options: Mapping[str, Any] | None = None,
):
    """AOT-compiled ``step`` for one batch shape: explicit shardings, state donated.

    ``compiler_options``: XLA options for this compile (``Lowered.compile``'s), e.g.
    ``{"xla_backend_optimization_level": 0}`` to compile a CPU debug run faster.
    """
    replicated = NamedSharding(mesh, PartitionSpec())
    batch_shardings = {k: v.sharding for k, v in batch.items()}
    jitted = jax.jit(
        step,
        in_shardings=(state_sharding, batch_shardings, replicated),
        out_shardings=(state_sharding, replicated),
        donate_argnums=(0,),
    )
    key = jax.ShapeDtypeStruct((), jax.random.key(0).dtype, sharding=replicated)
    with sharding.mesh_context(mesh):
        return jitted.lower(abstract_state, dict(batch), key).compile(compiler_options)
