"""Times our MemoryAttention against the official PyTorch module on the same inputs.

Usage (from the checkout root, official package and configs installed)::

    python scripts/bench_memory_attention.py                 # g=64, S=7, P=64, B=1
    python scripts/bench_memory_attention.py --grid 16 --configs efficienttam_ti_1

Every slot and pointer token is valid (the bank of a full propagation
frame) unless ``--valid`` says how many of the slots hold a memory (an early
frame; the official module then gets only those). Prints one row per config: ours (jitted, compile excluded), the
official module (torch, no_grad) on the concatenated memory, their ratio and
the relative difference of the outputs. Both run in this process, in turn
(ours, official, ours, ...), so a loaded machine slows both alike; the
minimum over ``--repeats`` calls of each is reported.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import numpy as np
import torch
from flax import nnx
from hydra.utils import instantiate

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from etam_jax.bench.official_model import (
    copy_weights,
    official_config,
    randomize_,
    relative_error,
)
from etam_jax.models.configs import get_model_config
from etam_jax.models.memory_attention import MemoryAttention


def _inputs(grid: int, slots: int, valid: int, ptrs: int, batch: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    hw = grid * grid
    normal = lambda *shape: rng.standard_normal(shape, np.float32)
    return {
        "curr": normal(batch, hw, 256),
        "curr_pos": normal(batch, hw, 256),
        "memory": normal(batch, slots, hw, 64),
        "memory_pos": normal(batch, slots, hw, 64),
        "memory_valid": np.broadcast_to(np.arange(slots) < valid, (batch, slots)),
        "ptr": normal(batch, ptrs, 64),
        "ptr_pos": normal(batch, ptrs, 64),
        "ptr_valid": np.ones((batch, ptrs), bool),
    }


def _build(name: str, grid: int) -> tuple[MemoryAttention, torch.nn.Module]:
    torch.manual_seed(0)
    official = instantiate(
        official_config(name, grid * 16).model.memory_attention, _recursive_=True
    )
    randomize_(official, 0)
    with nnx.use_eager_sharding(False):
        cfg = get_model_config(name, grid * 16).memory_attention
        ours = nnx.eval_shape(lambda: MemoryAttention(cfg, grid, rngs=nnx.Rngs(0)))
    copy_weights(ours, official)
    return ours, official.eval()


def _min_seconds(fns: list, repeats: int) -> list[tuple[float, np.ndarray]]:
    """Minimum time and last output of each of ``fns``, called in turn (interleaved: load hits all alike)."""
    times, outs = [[] for _ in fns], [None] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            outs[i] = fn()
            times[i].append(time.perf_counter() - start)
    return [(min(t), out) for t, out in zip(times, outs)]


def _official_call(official: torch.nn.Module, x: dict[str, np.ndarray]):
    """Seq-first official inputs: the batch's slots then pointers, concatenated."""
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a))
    ok = x["memory_valid"][0]  # the same slots in every element
    b, c = x["memory"].shape[0], x["memory"].shape[-1]
    seq = lambda mem, ptr: t(
        np.concatenate([mem[:, ok].reshape(b, -1, c), ptr], 1).transpose(1, 0, 2)
    )
    curr, pos = t(x["curr"].transpose(1, 0, 2)), t(x["curr_pos"].transpose(1, 0, 2))
    memory, memory_pos = seq(x["memory"], x["ptr"]), seq(x["memory_pos"], x["ptr_pos"])
    num_ptr = x["ptr"].shape[1]

    def call() -> np.ndarray:
        with torch.no_grad():
            out = official(
                curr, memory, curr_pos=pos, memory_pos=memory_pos, num_obj_ptr_tokens=num_ptr
            )
        return out.numpy().transpose(1, 0, 2)

    return call


def bench(name: str, args: argparse.Namespace) -> str:
    """One table row for config ``name``."""
    ours, official = _build(name, args.grid)
    x = _inputs(args.grid, args.slots, args.valid or args.slots, args.ptrs, args.batch)
    graphdef, state = nnx.split(ours)
    run = jax.jit(lambda state, inputs: nnx.merge(graphdef, state)(**inputs))
    inputs = jax.device_put(x)
    start = time.perf_counter()
    jax.block_until_ready(run(state, inputs))
    compile_s = time.perf_counter() - start
    ours_fn = lambda: np.asarray(run(state, inputs))
    (ours_s, got), (official_s, want) = _min_seconds(
        [ours_fn, _official_call(official, x)], args.repeats
    )
    err = relative_error(got, want)
    return f"{name:<20} {ours_s * 1e3:>10.0f} {official_s * 1e3:>12.0f} {ours_s / official_s:>6.2f} {compile_s:>9.1f} {err:>9.1e}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="efficienttam_ti,efficienttam_ti_1,efficienttam_ti_2")
    parser.add_argument(
        "--grid", type=int, default=64, help="feature grid side g (64 at image 1024)"
    )
    parser.add_argument("--slots", type=int, default=7, help="valid memory slots S")
    parser.add_argument("--valid", type=int, default=None, help="valid slots of S (default: all)")
    parser.add_argument("--ptrs", type=int, default=64, help="valid object-pointer tokens P")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's own)"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(
        f"backend {jax.default_backend()}, grid {args.grid}, slots {args.valid or args.slots}/{args.slots} valid, ptrs {args.ptrs}, batch {args.batch}"
    )
    print(
        f"{'config':<20} {'ours ms':>10} {'official ms':>12} {'ratio':>6} {'compile s':>9} {'rel err':>9}"
    )
    for name in args.configs.split(","):
        print(bench(name, args), flush=True)


if __name__ == "__main__":
    main()
