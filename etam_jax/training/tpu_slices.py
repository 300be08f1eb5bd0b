"""Cloud TPU slice topologies: accelerator type -> chips, hosts, mesh preset, VM image.

Accelerator types follow Cloud TPU naming: ``v4-N`` and ``v5p-N`` count
TensorCores (2 per chip), ``v5litepod-N`` (v5e) counts chips. Hosts are the
TPU VM workers of the slice (``gcloud ... ssh --worker=0..hosts-1``), one JAX
process each: 4 chips per host on v4, v5p and multi-host v5e; the v5e slices
of at most 8 chips are one host (v5litepod-8: 8 chips on one VM).
"""

from __future__ import annotations

import dataclasses
import math
import re

from etam_jax.errors import EtamError
from etam_jax.training.mesh_presets import MESH_PRESETS

# Cloud TPU runtime (VM image) per generation, from the Cloud TPU docs.
RUNTIME_VERSIONS = {
    "v4": "tpu-ubuntu2204-base",
    "v5p": "v2-alpha-tpuv5",
    "v5e": "v2-alpha-tpuv5-lite",
}
# Accelerator-type prefix -> generation name used by the mesh presets.
_GENERATIONS = {"v4": "v4", "v5p": "v5p", "v5litepod": "v5e"}


@dataclasses.dataclass(frozen=True)
class TpuSlice:
    """A pod slice: chips, hosts (TPU VM workers) and the mesh preset that fits it."""

    accelerator_type: str
    generation: str
    chips: int
    hosts: int
    mesh_preset: str

    @property
    def chips_per_host(self) -> int:
        """JAX devices per process (v4 and v5p chips are one device each: megacore)."""
        return self.chips // self.hosts

    @property
    def workers(self) -> str:
        """gcloud's ``--worker`` value naming every host: ``0`` or ``0-3``."""
        return "0" if self.hosts == 1 else f"0-{self.hosts - 1}"


def tpu_slice(accelerator_type: str) -> TpuSlice:
    """Topology of ``v4-N``, ``v5p-N`` (N TensorCores, 2 per chip) or ``v5litepod-N`` (N chips).

    The mesh presets put ``fsdp`` over one host's chips and ``data`` across
    hosts (``etam_jax/training/mesh_presets.py``), so the preset's data axis is
    the host count: 4 chips per host on v4 / v5p / multi-host v5e, 8 on the
    single-host v5litepod-8.

    Raises:
      EtamError: an accelerator type with no mesh preset.
    """
    match = re.fullmatch(r"(v4|v5p|v5litepod)-(\d+)", accelerator_type)
    preset = match and f"{_GENERATIONS[match[1]]}-{match[2]}"
    if preset not in MESH_PRESETS:
        known = [
            f"{prefix}-{p.split('-')[1]}"
            for prefix, gen in _GENERATIONS.items()
            for p in MESH_PRESETS
            if p.startswith(gen + "-")
        ]
        raise EtamError(
            f"--accelerator-type {accelerator_type!r} is not supported; known: {', '.join(known)}"
        )
    shape = MESH_PRESETS[preset]
    return TpuSlice(accelerator_type, _GENERATIONS[match[1]], math.prod(shape), shape[0], preset)
