"""Run a test function in N local JAX processes joined by ``jax.distributed``.

As Orbax's multihost tests (``checkpoint/orbax/checkpoint/_src/testing/oss/run_multihost.py``):
N Python processes on this machine, one coordinator on ``127.0.0.1:PORT``,
each with ``devices_per_process`` fake CPU devices. The target is a
``module:function`` called as ``function(coordinator_address, num_processes,
process_id, **kwargs)``; what it returns (JSON-serialisable) comes back per
process. The target calls ``initialize`` itself, so it can check what runs
before and after; the child calls ``jax.distributed.shutdown()`` after it.

A child that fails or hangs takes the others down: they would otherwise wait
in collectives until the distributed heartbeat times out.
"""

from __future__ import annotations

import contextlib
import dataclasses
import faulthandler
import importlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any

from tests.child_env import ROOT, child_env

_RESULT = "ETAM_MULTIPROCESS_RESULT "  # marks the line carrying the target's return value


@dataclasses.dataclass
class ProcessOutput:
    """One child: its exit status, output, and the target's return value."""

    process_id: int
    returncode: int | None
    stdout: str
    stderr: str
    result: Any = None


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spawn(args: list[str], env: dict[str, str], out, err) -> subprocess.Popen:
    """One child running ``_child_main(args)``, in its own session (killed as a group)."""
    argv = [sys.executable, "-m", "tests.multiprocess", *args]
    return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=err, start_new_session=True)


def _kill(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)  # its own session: the child and anything it forked
    for p in procs:
        p.wait()


def _wait_all(procs: list[subprocess.Popen], timeout: float) -> bool:
    """Wait for every child; False (children killed) on a failure or the timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        codes = [p.poll() for p in procs]
        if any(c not in (None, 0) for c in codes):
            break
        if all(c == 0 for c in codes):
            return True
        time.sleep(0.05)
    else:  # timed out: have the live children print their Python stacks first
        for p in procs:
            if p.poll() is None:
                os.kill(p.pid, signal.SIGUSR1)
        time.sleep(1.0)
    _kill(procs)
    return False


def _collect(process_id: int, proc: subprocess.Popen, out, err) -> ProcessOutput:
    out.seek(0), err.seek(0)
    stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
    lines = [ln for ln in stdout.splitlines() if ln.startswith(_RESULT)]
    result = json.loads(lines[-1][len(_RESULT) :]) if lines else None
    return ProcessOutput(process_id, proc.returncode, stdout, stderr, result)


def run_processes(
    target: str,
    num_processes: int = 2,
    *,
    devices_per_process: int = 4,
    kwargs: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 120.0,
    fast_compile: bool = True,
) -> list[ProcessOutput]:
    """Run ``target`` in ``num_processes`` processes at once and return their outputs.

    Args:
      target: ``"package.module:function"``, importable from the repository root.
      num_processes: how many processes (process ids ``0..num_processes-1``).
      devices_per_process: fake CPU devices per process (``XLA_FLAGS``).
      kwargs: extra JSON-serialisable keyword arguments for the target.
      env: extra environment variables for every child.
      timeout: seconds for all of them together.
      fast_compile: compile unoptimised (``tests/child_env.py``); off where the
        children's floats are compared bitwise with this process's.

    Raises:
      AssertionError: a child exited non-zero or the timeout passed (all
        children are killed first); the message holds each child's stderr tail.
    """
    address = f"127.0.0.1:{free_port()}"
    env = child_env(devices_per_process, fast_compile, **(env or {}))
    procs: list[subprocess.Popen] = []
    with contextlib.ExitStack() as stack:
        files = [
            (
                stack.enter_context(tempfile.TemporaryFile()),
                stack.enter_context(tempfile.TemporaryFile()),
            )
            for _ in range(num_processes)
        ]
        try:
            for pid, (out, err) in enumerate(files):
                args = [target, address, str(num_processes), str(pid), json.dumps(kwargs or {})]
                procs.append(_spawn(args, env, out, err))
            ok = _wait_all(procs, timeout)
        finally:
            _kill(procs)
        outputs = [_collect(i, p, *files[i]) for i, p in enumerate(procs)]
    if not ok:
        report = "\n".join(
            f"--- process {o.process_id} (exit {o.returncode}) stderr tail:\n{o.stderr[-3000:]}"
            for o in outputs
        )
        raise AssertionError(f"{target} failed or passed {timeout:.0f} s:\n{report}")
    return outputs


def _child_main(argv: list[str]) -> None:
    target, address, num_processes, process_id, kwargs = argv
    faulthandler.register(signal.SIGUSR1, all_threads=True)  # stacks of a hung child
    from absl import flags

    flags.FLAGS.mark_as_parsed()  # grain reads absl flags (as tests/conftest.py)
    module_name, function_name = target.split(":")
    function = getattr(importlib.import_module(module_name), function_name)
    result = function(address, int(num_processes), int(process_id), **json.loads(kwargs))
    print(_RESULT + json.dumps(result), flush=True)
    import jax

    jax.distributed.shutdown()  # a barrier: no process leaves while others still need it
    sys.stderr.flush()
    # Skip interpreter teardown: under load, process 0 (the coordinator) now and
    # then hung for good while garbage-collecting the distributed runtime at exit.
    os._exit(0)


if __name__ == "__main__":
    _child_main(sys.argv[1:])
