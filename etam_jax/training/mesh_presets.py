"""Named (data, fsdp, tensor) mesh shapes for TPU slices and CPU test meshes.

EfficientTAM-S has ~34M parameters, so a full replica fits any accelerator;
FSDP only saves optimizer-state memory. TPU presets therefore put ``fsdp``
over the chips of one host (fast ICI, the gradient reduce-scatter stays
local) and ``data`` across hosts; ``tensor`` stays 1 (the widths, 192-384,
are too small to split profitably).
"""

from __future__ import annotations

import math

from etam_jax.errors import EtamError

# Chips per host on each TPU generation (v4 / v5p: 4 chips; v5e: 4 on
# multi-host slices, 8 on the single-host v5litepod-8).
_CHIPS_PER_HOST = {"v4": 4, "v5p": 4, "v5e": 4}

# Slice names use the Cloud TPU convention: v4-N / v5p-N count TensorCores
# (2 per chip), v5e-N counts chips.
_TENSORCORES_PER_CHIP = {"v4": 2, "v5p": 2, "v5e": 1}

_TPU_SLICES = {
    "v4": (8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096),
    "v5p": (8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 12288),
    "v5e": (1, 4, 8, 16, 32, 64, 128, 256),
}


def _tpu_preset(generation: str, size: int) -> tuple[int, int, int]:
    chips = size // _TENSORCORES_PER_CHIP[generation]
    per_host = 8 if (generation == "v5e" and chips == 8) else _CHIPS_PER_HOST[generation]
    fsdp = min(chips, per_host)
    return (chips // fsdp, fsdp, 1)


def _build_presets() -> dict[str, tuple[int, int, int]]:
    presets = {
        # CPU test meshes (8 fake host devices, see tests/conftest.py).
        "cpu-1": (1, 1, 1),
        "cpu-dp8": (8, 1, 1),
        "cpu-fsdp8": (1, 8, 1),
        "cpu-fsdp4-tp2": (1, 4, 2),
        "cpu-2x2x2": (2, 2, 2),
        "cpu-dp4": (4, 1, 1),
    }
    for generation, sizes in _TPU_SLICES.items():
        for size in sizes:
            presets[f"{generation}-{size}"] = _tpu_preset(generation, size)
    return presets


MESH_PRESETS: dict[str, tuple[int, int, int]] = _build_presets()


def mesh_shape(preset: str, num_devices: int | None = None) -> tuple[int, int, int]:
    """The (data, fsdp, tensor) shape of a named preset.

    Args:
      preset: a key of ``MESH_PRESETS`` (``v5p-64``, ``cpu-2x2x2``, ...) or
        ``auto`` (pure data parallel over ``num_devices``).
      num_devices: the devices present; checked against the preset's size.

    Raises:
      EtamError: an unknown preset, or one whose size differs from ``num_devices``.
    """
    if preset == "auto":
        if num_devices is None:
            raise EtamError("mesh preset 'auto' needs the device count")
        return (num_devices, 1, 1)
    if preset not in MESH_PRESETS:
        raise EtamError(f"unknown mesh preset {preset!r}; known: auto, {', '.join(MESH_PRESETS)}")
    shape = MESH_PRESETS[preset]
    if num_devices is not None and math.prod(shape) != num_devices:
        raise EtamError(
            f"mesh preset {preset!r} {shape} needs {math.prod(shape)} devices, found {num_devices}"
        )
    return shape
