"""The environment of a child process a test starts (``etam ...`` or a JAX job).

The child runs on this machine's CPU with ``devices`` fake devices, sees the
repository on its path, and keeps the test session's other XLA flags (the
per-worker thread limits of ``conftest.py``). By default XLA's LLVM backend
does not optimise: compiling the train step is most of what these tests spend
(measured 60 -> 30 s per compile), and a test that compares two child runs
compiles both alike, so what it compares is unchanged. A test that compares a
child's floats bitwise with ones this process computed needs the child compiled
as this process is (``fast_compile=False``): the two backends round differently.
"""

from __future__ import annotations

import os
from pathlib import Path

from tests import fast_compile as fast_compile_flags

ROOT = Path(__file__).resolve().parents[1]


def xla_flags(devices: int, fast_compile: bool = True) -> str:
    """``XLA_FLAGS`` for a child: this session's flags, its own device count, fast compile."""
    ours = [f"--xla_force_host_platform_device_count={devices}"]
    ours += list(fast_compile_flags.FLAGS) if fast_compile else []
    names = {f.split("=")[0] for f in ours}
    kept = [f for f in os.environ.get("XLA_FLAGS", "").split() if f.split("=")[0] not in names]
    return " ".join(ours + kept)


def child_env(devices: int = 1, fast_compile: bool = True, **extra: str) -> dict[str, str]:
    """``os.environ`` for a child process: CPU, ``devices`` devices, the repo importable."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=path)
    env["XLA_FLAGS"] = xla_flags(devices, fast_compile)
    env.update(extra)
    return env
