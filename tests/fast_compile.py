"""XLA options that compile quickly and run slowly on CPU, for code a test runs once or a few times.

With the LLVM backend's optimisations off, the tiny train step compiles in
~40 s instead of ~56 s and its parameter initialiser in ~8 s instead of ~18 s,
while a step runs ~3 s instead of ~0.5 s (2-core machine, one thread per
worker): a test wins when it compiles and runs its program a few times.
Results differ from the optimised build by float rounding only; a test that
compares floats bitwise with an optimised build needs both built alike.

``OPTIONS`` go to ``jax.jit(..., compiler_options=)`` or ``Lowered.compile``;
``FLAGS`` are the same settings as ``XLA_FLAGS`` for a child process.
"""

from __future__ import annotations

OPTIONS = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}
FLAGS = tuple(f"--{name}={str(value).lower()}" for name, value in OPTIONS.items())
