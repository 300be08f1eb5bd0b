"""`etam bench memory-attention`: the memory attention's FLOPs and latency per frame, by pooling.

    etam bench memory-attention [--model efficienttam_ti] [--pool 1:none --pool 2:eq5 ...]
                                [--image-size 1024] [--repeats 3] [--official] [--out FILE.json]

One row per model and pooling point (``WINDOW:CORRECTION``; default the
model's own): XLA's FLOP count of one call with a full bank (7 memory slots
and 64 pointer tokens, one object; :mod:`etam_jax.sweep.cost`), the median
latency of ``--repeats`` jitted calls after a compiling one (0: FLOPs only),
and the key buffer each query attends. Pooling shrinks the bank to
``S * g*g / w**2`` tokens, but the buffer is never shorter than one unpooled
slot (``g*g``: it also serves a frame with a single memory), so once
``w**2 > S`` (window 4 and more with 7 slots) part of what is counted and
timed is padding, masked out of the softmax: ``padding_keys`` says how much.

With ``--official`` (torch and the official package installed), the
official memory-attention module of the official config with the same
trunk and pooling runs on the same inputs with the same random weights, in
turn with ours (so load slows both alike; the minimum of the repeats is
kept), and the relative difference of the outputs is reported. Results go
to ``--out`` (default ``bench_results/memory_attention_<time>.json``).
"""

from __future__ import annotations

import argparse
import time

import jax
import ml_collections
import numpy as np
from flax import nnx

from etam_jax.bench.report import report_header, write_report
from etam_jax.errors import EtamError
from etam_jax.models.configs import MODEL_NAMES, POOL_CORRECTIONS, feature_grid, get_model_config
from etam_jax.models.memory_attention import MemoryAttention
from etam_jax.models.pooled_attention import check_pooling, key_buffer_length
from etam_jax.sweep.cost import bank_shapes, memory_attention_flops, random_inputs

WHAT = "memory-attention"


def parse_pool(text: str) -> tuple[int, str]:
    """``"2:eq5"`` -> ``(2, "eq5")``; a bare window means correction ``none``."""
    window, _, correction = text.partition(":")
    correction = correction or "none"
    if not window.isdigit() or int(window) < 1 or correction not in POOL_CORRECTIONS:
        raise EtamError(
            f"--pool {text!r}: expected WINDOW:CORRECTION, WINDOW >= 1 and CORRECTION one of "
            f"{', '.join(POOL_CORRECTIONS)}"
        )
    return int(window), correction


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=f"etam bench {WHAT}", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", action="append", help="model name (repeatable; efficienttam_ti)")
    p.add_argument(
        "--pool",
        action="append",
        type=str,
        help="WINDOW:CORRECTION (repeatable; default the model's own pooling)",
    )
    p.add_argument("--image-size", type=int, default=1024, help="model resolution (1024)")
    p.add_argument("--repeats", type=int, default=3, help="timed calls per row; 0: FLOPs only")
    p.add_argument("--official", action="store_true", help="also time the official module")
    p.add_argument("--out", help="JSON file (default bench_results/memory_attention_<time>.json)")
    args = p.parse_args(argv)
    if args.repeats < 0:
        raise EtamError(f"--repeats {args.repeats}: must be >= 0")
    args.model = args.model or ["efficienttam_ti"]
    args.pool = [parse_pool(t) for t in args.pool] if args.pool else [None]
    return args


def point_config(model: str, image_size: int, pool: tuple[int, str] | None):
    """The model's config at ``image_size`` with pooling ``pool`` (None: its own), checked."""
    cfg = get_model_config(model, image_size)
    if pool is not None:
        cfg.memory_attention.pool_window, cfg.memory_attention.pool_correction = pool
    ma = cfg.memory_attention
    check_pooling(ma.pool_window, ma.pool_correction, feature_grid(cfg))
    return cfg


def official_name(cfg: ml_collections.ConfigDict) -> str | None:
    """The official 1024-px config with ``cfg``'s trunk and pooling, if there is one."""
    trunk = "ti" if cfg.image_encoder.trunk.embed_dim == 192 else "s"
    ma = cfg.memory_attention
    for name, point in MODEL_NAMES.items():
        if point == (trunk, 1024, ma.pool_window, ma.pool_correction):
            return name
    return None


def key_buffer(cfg: ml_collections.ConfigDict) -> dict:
    """Spatial keys a query attends to with a full bank, and how many of them are padding."""
    n, slots, window = feature_grid(cfg) ** 2, cfg.num_maskmem, cfg.memory_attention.pool_window
    pooled = slots * n // window**2
    buffer = key_buffer_length(slots, n, window)
    return {"pooled_keys": pooled, "key_buffer": buffer, "padding_keys": buffer - pooled}


def _interleaved_min(fns: list, repeats: int) -> list[tuple[float, np.ndarray]]:
    """Minimum seconds and last output of each of ``fns``, called in turn ``repeats`` times."""
    times, outs = [[] for _ in fns], [None] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            outs[i] = fn()
            times[i].append(time.perf_counter() - start)
    return [(min(t), out) for t, out in zip(times, outs)]


def _ours(cfg: ml_collections.ConfigDict, official) -> tuple:
    """``call(inputs) -> numpy``: our module, jitted, with ``official``'s weights if given."""
    grid = feature_grid(cfg)
    with nnx.use_eager_sharding(False):
        model = nnx.eval_shape(
            lambda: MemoryAttention(cfg.memory_attention, grid, rngs=nnx.Rngs(0))
        )
    if official is not None:
        from etam_jax.bench.official_model import copy_weights

        copy_weights(model, official)
    graphdef, params = nnx.split(model)
    if official is None:  # random-free constant weights: the cost does not depend on them
        params = jax.tree.map(lambda s: np.full(s.shape, 0.01, s.dtype), params)
    fn = jax.jit(lambda params, inputs: nnx.merge(graphdef, params)(**inputs))
    return lambda inputs: np.asarray(fn(params, inputs))


def _official_call(official, x: dict[str, np.ndarray]):
    """The official module on seq-first inputs: the valid slots, then the pointers."""
    import torch

    t = lambda a: torch.from_numpy(np.array(a))  # a writable copy
    b, c = x["memory"].shape[0], x["memory"].shape[-1]
    seq = lambda mem, ptr: t(np.concatenate([mem.reshape(b, -1, c), ptr], 1).transpose(1, 0, 2))
    curr, pos = t(x["curr"].transpose(1, 0, 2)), t(x["curr_pos"].transpose(1, 0, 2))
    memory, memory_pos = seq(x["memory"], x["ptr"]), seq(x["memory_pos"], x["ptr_pos"])

    def call() -> np.ndarray:
        with torch.no_grad():
            out = official(
                curr,
                memory,
                curr_pos=pos,
                memory_pos=memory_pos,
                num_obj_ptr_tokens=x["ptr"].shape[1],
            )
        return out.numpy().transpose(1, 0, 2)

    return call


def _build_official(name: str, image_size: int, seed: int = 0):
    from hydra.utils import instantiate

    from etam_jax.bench.official_model import official_config, randomize_

    module = instantiate(official_config(name, image_size).model.memory_attention, _recursive_=True)
    randomize_(module, seed)
    return module.eval()


def measure(cfg: ml_collections.ConfigDict, repeats: int, official: bool) -> dict:
    """One report row (see the module docstring)."""
    ma = cfg.memory_attention
    shapes = bank_shapes(cfg, feature_grid(cfg))
    row = {
        "model": cfg.name,
        "image_size": cfg.image_size,
        "grid": feature_grid(cfg),
        "pool_window": ma.pool_window,
        "pool_correction": ma.pool_correction,
        "slots": shapes["memory"].shape[1],
        "ptr_tokens": shapes["ptr"].shape[1],
        **key_buffer(cfg),
        "gflops": memory_attention_flops(cfg) / 1e9,
    }
    if repeats == 0:
        return row
    name = official_name(cfg) if official else None
    module = _build_official(name, cfg.image_size) if name else None
    ours = _ours(cfg, module)
    inputs = {k: np.asarray(v) for k, v in random_inputs(shapes).items()}
    start = time.perf_counter()
    ours(inputs)
    row["compile_s"] = time.perf_counter() - start
    fns = [lambda: ours(inputs)] + ([_official_call(module, inputs)] if module else [])
    results = _interleaved_min(fns, repeats)
    row["ours_ms"] = results[0][0] * 1e3
    if official and module is None:
        row["official"] = "no official config has this trunk and pooling"
    elif module is not None:
        from etam_jax.bench.official_model import relative_error

        row["official"] = name
        row["official_ms"] = results[1][0] * 1e3
        row["official_over_ours"] = results[1][0] / results[0][0]
        row["rel_err"] = relative_error(results[0][1], results[1][1])
    return row


def format_row(row: dict) -> str:
    timed = f" {row['ours_ms']:>9.1f}" if "ours_ms" in row else f" {'-':>9}"
    if "official_ms" in row:
        timed += (
            f" {row['official_ms']:>11.1f} {row['official_over_ours']:>6.2f}x"
            f" {row['rel_err']:>8.1e}"
        )
    return (
        f"{row['model']:<16} {row['pool_window']:>2}:{row['pool_correction']:<4}"
        f" {row['gflops']:>9.1f} {row['key_buffer']:>7} {row['padding_keys']:>7}{timed}"
    )


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    configs = [point_config(m, args.image_size, p) for m in args.model for p in args.pool]
    report = report_header(WHAT, argv)
    report["repeats"] = args.repeats
    report["results"] = []
    print(
        f"{'model':<16} {'pool':<7} {'GFLOP':>9} {'keys':>7} {'padding':>7} {'ours ms':>9}"
        + (f" {'official ms':>11} {'off/us':>7} {'rel err':>8}" if args.official else "")
    )
    for cfg in configs:
        row = measure(cfg, args.repeats, args.official)
        report["results"].append(row)
        print(format_row(row), flush=True)
    write_report(report, args.out, WHAT)
    return 0
