"""The sweep's bench stage: memory-attention cost of one point, as JSON.

    python -m etam_jax.sweep.bench --model-config POINT/model_config.json --out bench.json [--repeats 5]

Writes ``{"mem_attn_flops", "latency_ms", "compile_s", "grid", "slots",
"ptr_tokens", "pool_window", "pool_correction", "backend", "device_kind",
"latency_of"}`` (see :mod:`etam_jax.sweep.cost`) for the model config the
point trained (:mod:`etam_jax.sweep.training_config`). Run in its own process
by the sweep runner, so the runner never holds a JAX runtime while training runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import jax
import ml_collections

from etam_jax.errors import EtamError
from etam_jax.models.configs import feature_grid
from etam_jax.models.pooled_attention import check_pooling
from etam_jax.sweep.cost import (
    bank_shapes,
    memory_attention_flops,
    memory_attention_latency,
)
from etam_jax.sweep.files import write_json
from etam_jax.sweep.training_config import read_model_config

LATENCY_OF = "memory attention alone (jit, full bank, 1 object), median of the timed calls after a compiling one"


def stage_model_config(path: str | Path) -> ml_collections.ConfigDict:
    """The point's model config from ``path``, its pooling checked against its feature grid."""
    cfg = read_model_config(path)
    ma = cfg.memory_attention
    check_pooling(ma.pool_window, ma.pool_correction, feature_grid(cfg))
    return cfg


def measure(cfg: ml_collections.ConfigDict, repeats: int) -> dict:
    """The bench record of a model config (see the module docstring)."""
    seconds, compile_s = memory_attention_latency(cfg, repeats)
    shapes = bank_shapes(cfg, feature_grid(cfg))
    return {
        "mem_attn_flops": memory_attention_flops(cfg),
        "latency_ms": seconds * 1e3,
        "compile_s": compile_s,
        "grid": feature_grid(cfg),
        "slots": shapes["memory"].shape[1],
        "ptr_tokens": shapes["ptr"].shape[1],
        "pool_window": cfg.memory_attention.pool_window,
        "pool_correction": cfg.memory_attention.pool_correction,
        "backend": jax.default_backend(),
        "device_kind": jax.devices()[0].device_kind,
        "latency_of": LATENCY_OF,
    }


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(
        prog="python -m etam_jax.sweep.bench", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--model-config", required=True, help="JSON model config (model_config.json)")
    p.add_argument("--repeats", type=int, default=5, help="timed calls (the median is reported)")
    p.add_argument("--out", required=True, help="JSON file to write")
    args = p.parse_args(argv)
    try:
        record = measure(stage_model_config(args.model_config), args.repeats)
    except EtamError as e:
        print(f"sweep bench: error: {e}", file=sys.stderr)
        return 1
    write_json(Path(args.out), record)
    print(json.dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
