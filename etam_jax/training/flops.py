"""Model FLOPs of a step (XLA's cost analysis, or counted on the jaxpr) and model FLOPs utilisation.

MFU = achieved model FLOP/s / the devices' peak FLOP/s (PaLM's definition,
as MaxText reports it). XLA's cost analysis counts the body of a while loop
once, whatever its trip count, so a step whose frame loop is a ``lax.scan``
is undercounted; `jaxpr_flops` counts matrix FLOPs (dot products and
convolutions) on the traced program instead, multiplying ``scan`` bodies by
their length. The peak table holds dense matrix-unit figures per
chip as vendors publish them; ``None`` where no meaningful peak is known
(a CPU: it depends on the host's cores and vector width), in which case MFU
is reported as ``None`` rather than guessed.
"""

from __future__ import annotations

import math

import jax
from jax.extend import core as jex_core

# Peak dense FLOP/s per device, by compute dtype (bfloat16 / float32).
PEAK_FLOPS: dict[str, dict[str, float]] = {
    "TPU v4": {"bfloat16": 275e12, "float32": 275e12},
    "TPU v5 lite": {"bfloat16": 197e12, "float32": 197e12},  # v5e
    "TPU v5e": {"bfloat16": 197e12, "float32": 197e12},
    "TPU v5p": {"bfloat16": 459e12, "float32": 459e12},
    "TPU v6 lite": {"bfloat16": 918e12, "float32": 918e12},  # Trillium
    "TPU v5": {"bfloat16": 459e12, "float32": 459e12},  # v5p reports "TPU v5"
    "NVIDIA H100 PCIe": {"bfloat16": 756e12, "float32": 51e12},
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


def _dot_flops(eqn) -> float:
    (contract, _), _ = eqn.params["dimension_numbers"]
    lhs = eqn.invars[0].aval.shape
    return 2.0 * math.prod(eqn.outvars[0].aval.shape) * math.prod(lhs[d] for d in contract)


def _conv_flops(eqn) -> float:
    # Each output element sums rhs-size / out-features products; this holds for
    # grouped convs and for the batch-grouped ones of weight gradients too.
    rhs = eqn.invars[1].aval.shape
    out_features = rhs[eqn.params["dimension_numbers"].rhs_spec[0]]
    return 2.0 * math.prod(eqn.outvars[0].aval.shape) * math.prod(rhs) / out_features


def _sub_jaxprs(params) -> list:
    subs = []
    for value in params.values():
        for v in value if isinstance(value, (tuple, list)) else (value,):
            if isinstance(v, (jex_core.Jaxpr, jex_core.ClosedJaxpr)):
                subs.append(v)
    return subs


def jaxpr_flops(jaxpr) -> float:
    """Matrix FLOPs (``dot_general``, convolutions) of a (closed) jaxpr, 2 per multiply-add.

    ``scan`` bodies count ``length`` times; a ``cond`` counts its costliest
    branch (an upper bound where the branches differ); a ``while`` body counts
    once (its trip count is not static). Elementwise work is left out, as in
    the usual model-FLOPs figure.
    """
    jaxpr = getattr(jaxpr, "jaxpr", jaxpr)
    total = 0.0
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        if name == "dot_general":
            total += _dot_flops(eqn)
        elif name == "conv_general_dilated":
            total += _conv_flops(eqn)
        elif name == "cond":
            total += max(jaxpr_flops(b) for b in eqn.params["branches"])
        elif name == "scan":
            total += eqn.params["length"] * jaxpr_flops(eqn.params["jaxpr"])
        else:
            total += sum(jaxpr_flops(j) for j in _sub_jaxprs(eqn.params))
    return total
