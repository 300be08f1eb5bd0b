"""Model FLOPs of a compiled step (XLA's cost analysis) and model FLOPs utilisation.

MFU = achieved model FLOP/s / the devices' peak FLOP/s (PaLM's definition,
as MaxText reports it). The peak table holds dense matrix-unit figures per
chip as vendors publish them; ``None`` where no meaningful peak is known
(a CPU: it depends on the host's cores and vector width), in which case MFU
is reported as ``None`` rather than guessed.
"""

from __future__ import annotations

import jax

# Peak dense FLOP/s per device, by compute dtype (bfloat16 / float32).
PEAK_FLOPS: dict[str, dict[str, float]] = {
    "TPU v4": {"bfloat16": 275e12, "float32": 275e12},
    "TPU v5 lite": {"bfloat16": 197e12, "float32": 197e12},  # v5e
    "TPU v5e": {"bfloat16": 197e12, "float32": 197e12},
    "TPU v5p": {"bfloat16": 459e12, "float32": 459e12},
    "TPU v6 lite": {"bfloat16": 918e12, "float32": 918e12},  # Trillium
    "NVIDIA H100": {"bfloat16": 989e12, "float32": 67e12},  # SXM; float32 without TF32
    "NVIDIA H200": {"bfloat16": 989e12, "float32": 67e12},
    "NVIDIA A100": {"bfloat16": 312e12, "float32": 19.5e12},
}


def step_flops(compiled) -> float | None:
    """FLOPs of one call of an AOT-compiled function (``jit(...).lower(...).compile()``)."""
    analysis = compiled.cost_analysis()
    if isinstance(analysis, (list, tuple)):  # older jax: one dict per computation
        analysis = analysis[0] if analysis else {}
    flops = (analysis or {}).get("flops")
    return float(flops) if flops and flops > 0 else None


def peak_flops(device: jax.Device, dtype: str = "bfloat16") -> float | None:
    """The device's peak FLOP/s for ``dtype``, or None if unknown (CPU, new chips)."""
    kind = device.device_kind
    for prefix, peaks in PEAK_FLOPS.items():
        if kind.startswith(prefix):
            return peaks.get(dtype)
    return None


def mfu(flops_per_step: float | None, step_seconds: float, devices, dtype: str) -> float | None:
    """Model FLOPs utilisation of a step over ``devices``; None when unknown.

    ``flops_per_step`` is the whole (global) step's FLOPs as XLA reports them for
    the SPMD program; under SPMD the cost analysis is per device, so it is
    compared with one device's peak.
    """
    peak = peak_flops(devices[0], dtype)
    if not flops_per_step or not peak or step_seconds <= 0:
        return None
    return flops_per_step / step_seconds / peak
