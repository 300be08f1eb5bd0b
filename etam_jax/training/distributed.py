"""Multi-process JAX start-up: ``jax.distributed.initialize`` from `etam train` flags.

Three cases, as ``initialize`` documents:

- Cloud TPU VM, no flags: every host of the slice calls
  ``jax.distributed.initialize()`` with no arguments and JAX finds the
  coordinator (worker 0), the process count and this host's id from the TPU
  metadata.
- Explicit ``--coordinator_address``, ``--num_processes`` and ``--process_id``
  (GPU or CPU clusters, local multi-process tests): passed through as given.
- No flags and no TPU: a single process; nothing to do.

It must run before anything touches a JAX backend (``jax.devices()``, any
computation), since the backends are created with the distributed client.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Sequence

import jax

from etam_jax.errors import EtamError

# Flag names of `etam train` (and of ``initialize``'s keyword arguments).
FLAGS = ("--coordinator_address", "--num_processes", "--process_id")

_ADDRESS = re.compile(r"^\S+:\d+$")  # host:port (IPv6 in brackets is also host:port)


@dataclasses.dataclass(frozen=True)
class ProcessInfo:
    """Where this process sits in the job, for the first lines of a log."""

    index: int
    count: int
    platform: str
    local_devices: tuple[str, ...]
    global_device_count: int

    def __str__(self) -> str:
        return (
            f"process {self.index}/{self.count}: {len(self.local_devices)} local "
            f"{self.platform} devices [{', '.join(self.local_devices)}] "
            f"of {self.global_device_count}"
        )


def process_info() -> ProcessInfo:
    """This process's index, the process count and its devices (initialises the backend)."""
    return ProcessInfo(
        index=jax.process_index(),
        count=jax.process_count(),
        platform=jax.default_backend(),
        local_devices=tuple(str(d.id) for d in jax.local_devices()),
        global_device_count=jax.device_count(),
    )


def _platforms() -> list[str]:
    """The platforms JAX was asked for (``JAX_PLATFORMS`` / ``jax_platforms``); [] if unset."""
    value = jax.config.jax_platforms or os.environ.get("JAX_PLATFORMS") or ""
    return [p.strip() for p in value.split(",") if p.strip()]


def on_cloud_tpu() -> bool:
    """Whether this is a Cloud TPU VM that JAX will use (libtpu and TPU chips present).

    ``import jax`` runs ``cloud_tpu_init``, which sets ``running_in_cloud_tpu_vm``
    from the PCI devices and libtpu without creating a backend; JAX's own TPU
    cluster detection (``clusters/cloud_tpu_cluster.py``) reads the same flag.
    """
    platforms = _platforms()
    if platforms and "tpu" not in platforms:
        return False
    from jax._src import cloud_tpu_init  # private, but the only backend-free probe

    return bool(cloud_tpu_init.running_in_cloud_tpu_vm)


def _check_flags(
    coordinator_address: str | None, num_processes: int | None, process_id: int | None
) -> None:
    """All three flags or none; a host:port address and 0 <= process_id < num_processes."""
    values = dict(zip(FLAGS, (coordinator_address, num_processes, process_id)))
    given = [flag for flag, value in values.items() if value is not None]
    if len(given) not in (0, len(FLAGS)):
        missing = [flag for flag in FLAGS if flag not in given]
        raise EtamError(
            f"multi-process flags must be given together: found {', '.join(given)}, "
            f"missing {', '.join(missing)} (give all three, or none: auto-detected on a "
            "Cloud TPU VM, a single process elsewhere)"
        )
    if not given:
        return
    if not _ADDRESS.match(coordinator_address):
        raise EtamError(
            f"--coordinator_address must be HOST:PORT (process 0's address), "
            f"found {coordinator_address!r}"
        )
    if not 0 <= process_id < num_processes:
        raise EtamError(
            f"--process_id must be in [0, --num_processes={num_processes}), found {process_id}"
        )


def _use_cpu_collectives() -> None:
    """Gloo for cross-process collectives on the CPU backend.

    The CPU client picks its collectives when it is created
    (``xla_bridge.make_cpu_client``); without an implementation, computations
    spanning processes fail. jax 0.10.2 defaults ``jax_cpu_collectives_implementation``
    to ``"gloo"`` (bundled in jaxlib); only an unset value is filled in, so an
    explicit ``mpi`` stays. A CPU client exists unless ``JAX_PLATFORMS`` excludes it.
    """
    platforms = _platforms()
    if platforms and "cpu" not in platforms:
        return
    if jax.config.jax_cpu_collectives_implementation is None:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")


def initialize(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    local_device_ids: Sequence[int] | None = None,
) -> bool:
    """Start JAX's distributed runtime if this job has several processes.

    Call first thing, before any JAX computation or ``jax.devices()``. Calling
    again once initialised does nothing.

    Args:
      coordinator_address: ``HOST:PORT`` of process 0 (``--coordinator_address``).
      num_processes: the number of processes (``--num_processes``).
      process_id: this process's id in ``[0, num_processes)`` (``--process_id``).
      local_device_ids: restrict this process to these local devices (GPU).

    Returns:
      Whether ``jax.distributed`` is running (False for a single process).

    Raises:
      EtamError: only some of the three flags given, a bad address or id, or
        JAX refusing to start (e.g. a backend already initialised).
    """
    _check_flags(coordinator_address, num_processes, process_id)
    if jax.distributed.is_initialized():
        return True
    explicit = coordinator_address is not None
    if not explicit and not on_cloud_tpu():
        if local_device_ids is not None:
            raise EtamError("local_device_ids needs " + ", ".join(FLAGS))
        return False
    _use_cpu_collectives()
    # On a Cloud TPU VM without flags JAX reads the rest from the TPU metadata.
    kwargs = {"local_device_ids": local_device_ids} if local_device_ids is not None else {}
    if explicit:
        kwargs.update(
            coordinator_address=coordinator_address,
            num_processes=num_processes,
            process_id=process_id,
        )
    try:
        jax.distributed.initialize(**kwargs)
    except (RuntimeError, ValueError) as e:
        shown = ", ".join(f"{k}={v!r}" for k, v in kwargs.items()) or "auto-detect on TPU"
        raise EtamError(f"jax.distributed.initialize({shown}) failed: {e}") from e
    return True
