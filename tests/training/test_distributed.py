"""etam_jax.training.distributed: flag checks in process; a real 2-process x 4-device job."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from etam_jax.errors import EtamError
from etam_jax.training import distributed
from tests.multiprocess import run_processes

NUM_PROCESSES, LOCAL_DEVICES, ROWS_PER_PROCESS, COLS = 2, 4, 8, 3


def local_rows(process_id: int) -> np.ndarray:
    """This process's rows of the global batch: distinct values per process."""
    start = process_id * ROWS_PER_PROCESS * COLS
    return np.arange(start, start + ROWS_PER_PROCESS * COLS, dtype=np.float32).reshape(
        ROWS_PER_PROCESS, COLS
    )


def cross_process_job(coordinator_address: str, num_processes: int, process_id: int) -> dict:
    """One process: initialize, a global 8-device mesh, a batch made of both processes' rows."""
    import jax.numpy as jnp
    from jax.experimental import multihost_utils
    from jax.sharding import NamedSharding, PartitionSpec

    from etam_jax.training.sharding import make_mesh

    started = distributed.initialize(coordinator_address, num_processes, process_id)
    info = distributed.process_info()
    mesh = make_mesh((NUM_PROCESSES, LOCAL_DEVICES, 1))  # data across processes
    sharding = NamedSharding(mesh, PartitionSpec(("data", "fsdp")))
    batch = jax.make_array_from_process_local_data(sharding, local_rows(process_id))
    # Row-weighted: a sum that also checks each process's rows land in their global place.
    weights = jnp.arange(batch.shape[0], dtype=jnp.float32)[:, None]
    total, weighted = jax.jit(lambda x: (x.sum(), (x * weights).sum()))(batch)
    gathered = multihost_utils.process_allgather(local_rows(process_id))
    return {
        "started": started,
        "info": [info.index, info.count, len(info.local_devices), info.global_device_count],
        "platform": info.platform,
        "global_shape": list(batch.shape),
        "total": float(total),
        "weighted": float(weighted),
        "gathered": np.asarray(gathered).tolist(),
    }


def test_two_processes_compute_across_processes():
    outputs = run_processes(
        "tests.training.test_distributed:cross_process_job",
        NUM_PROCESSES,
        devices_per_process=LOCAL_DEVICES,
        timeout=60,
    )
    # Independent reference: the global batch is process 0's rows then process 1's.
    full = np.concatenate([local_rows(i) for i in range(NUM_PROCESSES)])
    weights = np.arange(full.shape[0], dtype=np.float64)[:, None]
    for out in outputs:
        got = out.result
        assert got["started"] is True
        assert got["platform"] == "cpu"
        assert got["info"] == [out.process_id, NUM_PROCESSES, LOCAL_DEVICES, 8]
        assert got["global_shape"] == [NUM_PROCESSES * ROWS_PER_PROCESS, COLS]
        assert got["total"] == pytest.approx(full.sum())
        assert got["weighted"] == pytest.approx((full * weights).sum())
        np.testing.assert_array_equal(
            np.asarray(got["gathered"]), full.reshape(NUM_PROCESSES, ROWS_PER_PROCESS, COLS)
        )


@pytest.mark.parametrize(
    "flags, missing",
    [
        (("127.0.0.1:1234", None, None), "--num_processes, --process_id"),
        ((None, 2, None), "--coordinator_address, --process_id"),
        (("127.0.0.1:1234", 2, None), "missing --process_id"),
    ],
)
def test_partial_flags_name_the_missing_ones(flags, missing):
    with pytest.raises(EtamError, match=missing):
        distributed.initialize(*flags)


@pytest.mark.parametrize(
    "flags, message",
    [
        (("127.0.0.1", 2, 0), "HOST:PORT"),
        (("127.0.0.1:1234", 2, 2), r"--process_id must be in \[0, --num_processes=2\)"),
    ],
)
def test_bad_flag_values(flags, message):
    with pytest.raises(EtamError, match=message):
        distributed.initialize(*flags)


def test_no_flags_off_tpu_is_a_single_process():
    assert not distributed.on_cloud_tpu()
    assert distributed.initialize() is False
    assert not jax.distributed.is_initialized()


def test_no_flags_on_tpu_auto_detects(monkeypatch):
    calls = []
    monkeypatch.setattr(distributed, "on_cloud_tpu", lambda: True)
    monkeypatch.setattr(jax.distributed, "initialize", lambda **kw: calls.append(kw))
    assert distributed.initialize() is True
    assert calls == [{}]  # no arguments: JAX reads the TPU metadata


def test_after_backend_start_is_a_clear_error():
    jax.devices()  # the backend exists now: too late for jax.distributed
    with pytest.raises(EtamError, match="before any JAX calls"):
        distributed.initialize("127.0.0.1:1234", 1, 0)
    assert not jax.distributed.is_initialized()


def test_process_info_single_process():
    info = distributed.process_info()
    assert (info.index, info.count) == (0, 1)
    assert len(info.local_devices) == info.global_device_count == jax.device_count()
    assert str(info).startswith("process 0/1:")
