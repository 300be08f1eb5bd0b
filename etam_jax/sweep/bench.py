"""The sweep's bench stage: memory-attention cost of one point, as JSON.

    python -m etam_jax.sweep.bench --model efficienttam_ti --image-size 1024 \
        --window 2 --correction eq5 --out bench.json [--repeats 5]

Writes ``{"mem_attn_flops", "latency_ms", "compile_s", "grid", "slots",
"ptr_tokens", "backend", "device_kind", "latency_of"}`` (see
:mod:`etam_jax.sweep.cost`). Run in its own process by the sweep runner, so
the runner never holds a JAX runtime while training runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import jax

from etam_jax.errors import EtamError
from etam_jax.models.configs import feature_grid, get_model_config
from etam_jax.models.pooled_attention import check_pooling
from etam_jax.sweep.cost import (
    bank_shapes,
    memory_attention_flops,
    memory_attention_latency,
)
from etam_jax.sweep.files import write_json

LATENCY_OF = "memory attention alone (jit, full bank, 1 object), median of --repeats calls after a compiling one"


def point_config(model: str, image_size: int, window: int, correction: str):
    """The model config of a sweep point (pooling fields set and checked)."""
    cfg = get_model_config(model, image_size)
    check_pooling(window, correction, feature_grid(cfg))
    cfg.memory_attention.pool_window = window
    cfg.memory_attention.pool_correction = correction
    return cfg


def measure(model: str, image_size: int, window: int, correction: str, repeats: int) -> dict:
    """The bench record of one point (see the module docstring)."""
    cfg = point_config(model, image_size, window, correction)
    seconds, compile_s = memory_attention_latency(cfg, repeats)
    shapes = bank_shapes(cfg, feature_grid(cfg))
    return {
        "mem_attn_flops": memory_attention_flops(cfg),
        "latency_ms": seconds * 1e3,
        "compile_s": compile_s,
        "grid": feature_grid(cfg),
        "slots": shapes["memory"].shape[1],
        "ptr_tokens": shapes["ptr"].shape[1],
        "backend": jax.default_backend(),
        "device_kind": jax.devices()[0].device_kind,
        "latency_of": LATENCY_OF,
    }


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="python -m etam_jax.sweep.bench", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--model", required=True)
    p.add_argument("--image-size", type=int, required=True)
    p.add_argument("--window", type=int, required=True)
    p.add_argument("--correction", required=True)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", required=True, help="JSON file to write")
    args = p.parse_args(argv)
    try:
        record = measure(args.model, args.image_size, args.window, args.correction, args.repeats)
    except EtamError as e:
        print(f"sweep bench: error: {e}", file=sys.stderr)
        return 1
    write_json(Path(args.out), record)
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
