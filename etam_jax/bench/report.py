"""What every ``etam bench`` report shares: its header (command, time, backend, device) and its file."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence

import jax


def report_header(what: str, argv: Sequence[str]) -> dict:
    """The fields every report starts with: the command line, the time, the JAX backend and device."""
    return {
        "command": ["etam", "bench", what, *argv],
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "jax_backend": jax.default_backend(),
        "device_kind": jax.devices()[0].device_kind,
    }


def write_report(report: dict, out: str | None, what: str) -> str:
    """Writes ``report`` to ``out`` (default ``bench_results/<what>_<time>.json``); returns the path."""
    out = out or os.path.join("bench_results", f"{what}_{time.strftime('%Y%m%d_%H%M%S')}.json")
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    with open(out, "w") as f:
        json.dump(report, f, indent=1)
    print(f"etam bench {what}: wrote {out}", flush=True)
    return out
