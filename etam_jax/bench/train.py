"""`etam bench train`: compile time, step time, throughput, FLOPs, MFU and memory of the train step.

    etam bench train [--config experiments/configs/demo.py] [--config.FIELD=VALUE ...]
                     [--model efficienttam_s ...] [--image-size 1024] [--steps 10] [--warmup 2]
                     [--dtype float32|bfloat16] [--mesh data,fsdp,tensor] [--out FILE.json]

For each config (the ``--config`` file, or ``get_base(NAME, 'sav')`` per
``--model`` at the demo's resolution unless ``--image-size``) and each batch
kind its data sources define (clip batches, image batches: one compiled step
per (frames, objects) shape, as `train_loop.Trainer` compiles them), the step
is compiled ahead of time with the training shardings and run on a synthetic
global batch (random uint8 frames, elliptic blob masks, every object and frame
valid: the input pipeline is benchmarked by ``etam bench data``). Reported:
compile time, the median of ``--steps`` step times after ``--warmup`` steps
(each waited for with ``block_until_ready``), examples/s, FLOPs (XLA's cost
analysis, per device, which counts a loop body once; and the matrix FLOPs of
the traced step with scan bodies times their length, the figure MFU uses),
achieved FLOP/s, MFU against the device's peak (None where no peak is known,
e.g. CPUs), peak memory per device (``memory_stats``; host peak RSS where the
backend has none) and XLA's buffer sizes of the compiled step. The JSON goes
to ``--out`` (default ``bench_results/train_<time>.json``).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time

import jax
import ml_collections
import numpy as np
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec

from data_pipelines.global_batch import to_global_batch
from etam_jax.bench.report import report_header, write_report
from etam_jax.errors import EtamError
from etam_jax.models.build import build_model
from etam_jax.training import flops, sharding
from etam_jax.training.config_loader import (
    apply_overrides,
    load_module_config,
    split_overrides,
)
from etam_jax.training.train_loop import batch_shapes, make_run_mesh
from etam_jax.training.train_step import (
    abstract_batch,
    compile_step,
    init_state,
    make_train_step,
    split_trainable,
)

DEFAULT_CONFIG = "experiments/configs/demo.py"


class _Parser(argparse.ArgumentParser):
    """Bad flags raise a one-line EtamError instead of printing usage and exiting."""

    def error(self, message: str):
        raise EtamError(f"{message} (see etam bench train --help)")


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """``(flags, --config.FIELD=VALUE overrides)``."""
    rest, overrides = split_overrides(argv)
    p = _Parser(prog="etam bench train", description=__doc__.split("\n\n", 1)[0])
    p.add_argument("--config", help=f"experiment config file[:arg] (default {DEFAULT_CONFIG})")
    p.add_argument("--model", action="append", help="get_base(NAME, 'sav') instead (repeatable)")
    p.add_argument("--image-size", type=int, help="model and data resolution")
    p.add_argument("--steps", type=int, default=10, help="timed steps (median reported)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps after compilation")
    p.add_argument(
        "--batch",
        choices=("all", "clip", "image"),
        default="all",
        help="which batch kinds of the config's data sources to run",
    )
    p.add_argument("--dtype", choices=("float32", "bfloat16"), help="model compute dtype")
    p.add_argument("--mesh", help="data,fsdp,tensor sizes (default: the config's mesh)")
    p.add_argument("--out", help="JSON file (default bench_results/train_<time>.json)")
    args = p.parse_args(rest)
    if args.config and args.model:
        raise EtamError("--config and --model exclude each other")
    if args.steps < 1 or args.warmup < 0:
        raise EtamError(
            f"--steps must be >= 1 and --warmup >= 0, found {args.steps}, {args.warmup}"
        )
    args.mesh = _mesh_flag(args.mesh)
    return args, overrides


def _mesh_flag(text: str | None) -> tuple[int, int, int] | None:
    if text is None:
        return None
    try:
        shape = tuple(int(v) for v in text.split(","))
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise EtamError(f"--mesh: expected 3 positive sizes data,fsdp,tensor, found {text!r}")
    return shape


def bench_configs(
    args: argparse.Namespace, overrides: list[str]
) -> list[ml_collections.ConfigDict]:
    """The locked training configs to benchmark, flags and overrides applied."""
    if args.model:
        from experiments.configs import demo  # pylint: disable=import-outside-toplevel
        from experiments.configs.base import get_base  # pylint: disable=import-outside-toplevel

        bases = [get_base(name, "sav") for name in args.model]
        for cfg in bases:
            cfg.model.image_size = demo.SIZE
    else:
        bases = [load_module_config(args.config or DEFAULT_CONFIG)]
    for cfg in bases:
        apply_overrides(cfg, overrides)
        cfg.model.image_size = args.image_size or cfg.model.image_size
        if cfg.model.image_size % 16:
            raise EtamError(
                f"--image-size / model.image_size must be a multiple of 16, "
                f"found {cfg.model.image_size}"
            )
        cfg.data.augment.resolution = cfg.model.image_size  # synthetic data: always the model's
        cfg.model.dtype = args.dtype or cfg.model.dtype
        if args.mesh:
            cfg.mesh.shape = args.mesh
        cfg.lock()
    return bases


def bench_mesh(
    cfg: ml_collections.ConfigDict, shape: tuple[int, int, int] | None
) -> jax.sharding.Mesh:
    """``--mesh`` over the first devices it needs (e.g. one GPU of eight), else the config's mesh."""
    if shape is None:
        return make_run_mesh(cfg)
    count = int(np.prod(shape))
    if count > jax.device_count():
        raise EtamError(f"--mesh {shape} needs {count} devices, found {jax.device_count()}")
    return sharding.make_mesh(shape, jax.devices()[:count])


def blob_masks(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """bool ``[..., S, S]``: one random axis-aligned ellipse per leading index."""
    size = shape[-1]
    y, x = np.arange(size)[:, None] + 0.5, np.arange(size)[None, :] + 0.5
    centers = rng.uniform(0.25, 0.75, shape[:-2] + (2,)) * size
    radii = rng.uniform(0.08, 0.3, shape[:-2] + (2,)) * size
    out = np.empty(shape, bool)
    for idx in np.ndindex(*shape[:-2]):
        (cy, cx), (ry, rx) = centers[idx], radii[idx]
        out[idx] = ((y - cy) / ry) ** 2 + ((x - cx) / rx) ** 2 <= 1.0
    return out


def synthetic_batch(shapes: dict, seed: int) -> dict[str, np.ndarray]:
    """This process's share of a global batch of ``batch_shapes`` form, every object valid."""
    rng = np.random.default_rng(seed)
    per_process = jax.process_count()
    local = {
        k: ((shape[0] // per_process,) + shape[1:], dtype) for k, (shape, dtype) in shapes.items()
    }
    return {
        "frames": rng.integers(0, 256, local["frames"][0], dtype=np.uint8),
        "masks": blob_masks(rng, local["masks"][0]),
        "obj_valid": np.ones(*local["obj_valid"]),
        "frame_valid": np.ones(*local["frame_valid"]),
    }


def model_flops(cfg: ml_collections.ConfigDict, abstract_state, batch: dict, mesh) -> float:
    """Matrix FLOPs of one global step, counted on the jaxpr without rematerialisation."""
    no_remat = cfg.copy_and_resolve_references()
    no_remat.remat = False  # model FLOPs leave recomputation out (PaLM's definition)
    key = jax.ShapeDtypeStruct((), jax.random.key(0).dtype)
    with sharding.mesh_context(mesh):
        jaxpr = jax.make_jaxpr(make_train_step(no_remat))(abstract_state, batch, key)
    return flops.jaxpr_flops(jaxpr)


def time_steps(compiled, state, batch: dict, count: int, mesh, seed: int):
    """Runs ``count`` steps, each waited for; ``(state, seconds per step, last metrics)``."""
    replicated = NamedSharding(mesh, PartitionSpec())
    keys = [jax.device_put(jax.random.key(seed + i), replicated) for i in range(count)]
    seconds, metrics = [], {}
    for key in keys:
        start = time.perf_counter()
        state, metrics = compiled(state, batch, key)
        jax.block_until_ready((state, metrics))
        seconds.append(time.perf_counter() - start)
    return state, seconds, metrics


def peak_memory(devices) -> dict:
    """Peak bytes in use per device (max over ``devices``), or the host's peak RSS."""
    stats = [d.memory_stats() for d in devices]
    if all(s and "peak_bytes_in_use" in s for s in stats):
        return {
            "peak_memory_per_device_mb": max(s["peak_bytes_in_use"] for s in stats) / 2**20,
            "memory_source": "device memory_stats peak_bytes_in_use (process-wide so far; "
            "max over the mesh's devices)",
        }
    return {
        "peak_memory_per_device_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "memory_source": "host peak RSS (getrusage; the backend reports no device memory)",
    }


def compiled_memory(compiled) -> dict | None:
    """XLA's buffer sizes of a compiled step, per device, in MiB (None if not reported)."""
    m = compiled.memory_analysis()
    if m is None:
        return None
    fields = ("argument", "output", "alias", "temp", "generated_code")
    return {f: getattr(m, f"{f}_size_in_bytes") / 2**20 for f in fields}


def flops_fields(compiled, model_fl: float, seconds: float, devices: list, dtype: str) -> dict:
    """FLOPs, achieved FLOP/s and MFU of a step taking ``seconds`` on ``devices``."""
    n, peak = len(devices), flops.peak_flops(devices[0], dtype)
    xla = flops.step_flops(compiled)
    out = {
        "model_flops_per_step": model_fl,
        "xla_flops_per_step_per_device": xla,
        "achieved_flops_per_s": model_fl / seconds,
        "achieved_flops_per_s_per_device": model_fl / seconds / n,
        "peak_flops_per_device": peak,
        "mfu": flops.mfu(model_fl / n, seconds, devices, dtype),
        "mfu_xla": flops.mfu(xla, seconds, devices, dtype),
    }
    if peak is None:
        out["mfu_note"] = (
            f"no peak FLOP/s known for device kind {devices[0].device_kind!r} "
            f"({dtype}; a CPU's depends on its cores and vector units): MFU not computed"
        )
    return out


def batch_kind(num_frames: int) -> str:
    """``clip`` (several frames, the memory path) or ``image`` (one frame)."""
    return "clip" if num_frames > 1 else "image"


class StepBench:
    """One config: its mesh, a sharded step-0 state and the step function, then one row per batch kind."""

    def __init__(self, cfg: ml_collections.ConfigDict, args: argparse.Namespace):
        self.cfg, self.args = cfg, args
        self.mesh = bench_mesh(cfg, args.mesh)
        self.devices = list(self.mesh.devices.flat)
        build_fn = lambda: build_model(cfg.model, rngs=nnx.Rngs(cfg.seed))
        self.state, self.shardings = init_state(build_fn, cfg, self.mesh)
        self.abstract = jax.tree.map(
            lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), self.state
        )
        self.step_fn = make_train_step(cfg)
        trainable = split_trainable(self.state.params)[0]
        self.num_params = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(trainable))

    def rows(self) -> list[dict]:
        rows = []
        for (frames, objects), shapes in batch_shapes(self.cfg).items():
            names = [
                n
                for n, s in self.cfg.data.sources.items()
                if (s.num_frames, s.max_objects) == (frames, objects)
            ]
            if self.args.batch not in ("all", batch_kind(frames)):
                continue
            rows.append(self.run(names, shapes))
            print_row(rows[-1])
        return rows

    def _check_divisible(self, names: list[str], batch: int) -> None:
        shards = self.mesh.shape["data"] * self.mesh.shape["fsdp"]
        if batch % shards:
            raise EtamError(
                f"global batch {batch} of data source(s) {names} is not divisible by the "
                f"mesh's data x fsdp = {shards} (set --mesh or the sources' batch_size)"
            )

    def run(self, names: list[str], shapes: dict) -> dict:
        """Compiles, times and measures the step for one batch shape."""
        cfg, args = self.cfg, self.args
        b, t, o = shapes["masks"][0][:3]
        self._check_divisible(names, b)
        batch_abs = abstract_batch(shapes, self.mesh)
        start = time.perf_counter()
        compiled = compile_step(self.step_fn, self.shardings, self.abstract, batch_abs, self.mesh)
        compile_s = time.perf_counter() - start
        model_fl = model_flops(cfg, self.abstract, batch_abs, self.mesh)
        batch = to_global_batch(synthetic_batch(shapes, cfg.seed), self.mesh)
        self.state, seconds, metrics = time_steps(
            compiled, self.state, batch, args.warmup + args.steps, self.mesh, cfg.seed
        )
        step_s = statistics.median(seconds[args.warmup :])
        return {
            "config": cfg.name,
            "model": cfg.model.name,
            "batch": batch_kind(t),
            "sources": names,
            "global_batch": b,
            "num_frames": t,
            "max_objects": o,
            "image_size": cfg.model.image_size,
            "dtype": cfg.model.dtype,
            "remat": bool(cfg.remat),
            "trainable_params": self.num_params,
            "mesh_shape": dict(self.mesh.shape),
            "num_devices": len(self.devices),
            "compile_s": compile_s,
            "step_time_s": step_s,
            "step_times_s": seconds[args.warmup :],
            "warmup_times_s": seconds[: args.warmup],
            "examples_per_s": b / step_s,
            **flops_fields(compiled, model_fl, step_s, self.devices, cfg.model.dtype),
            **peak_memory(self.devices),
            "compiled_memory_mb": compiled_memory(compiled),
            "loss": float(metrics["loss"]),
            "finite": bool(metrics["finite"]),
        }


def print_row(row: dict) -> None:
    mfu = "n/a" if row["mfu"] is None else f"{100 * row['mfu']:.1f}%"
    print(
        f"{row['config']:<20} {row['model']:<18} {row['batch']:<5} B{row['global_batch']} "
        f"T{row['num_frames']} O{row['max_objects']} {row['image_size']}px {row['dtype']:<8} "
        f"compile {row['compile_s']:6.1f} s  step {1000 * row['step_time_s']:8.1f} ms  "
        f"{row['examples_per_s']:7.2f} ex/s  {row['model_flops_per_step'] / 1e9:9.2f} GFLOP  "
        f"{row['achieved_flops_per_s'] / 1e12:7.3f} TFLOP/s  MFU {mfu}  "
        f"peak mem {row['peak_memory_per_device_mb']:7.0f} MiB",
        flush=True,
    )


def main(argv: list[str]) -> int:
    args, overrides = parse_args(argv)
    configs = bench_configs(args, overrides)  # bad fields fail before anything compiles
    report = {
        **report_header("train", argv),
        "warmup_steps": args.warmup,
        "timed_steps": args.steps,
        "results": [],
    }
    for cfg in configs:
        report["results"] += StepBench(cfg, args).rows()
    write_report(report, args.out, "train")
    return 0
