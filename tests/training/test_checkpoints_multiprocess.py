"""Checkpoints in a real 2-process x 4-device job: one state sharded across both
processes, one Grain iterator per process, a corrupt latest checkpoint that both
processes skip; then this (single) process restores the job's state onto 4 devices."""

from __future__ import annotations

import glob
import os

import grain
import jax
import numpy as np

from etam_jax.training import checkpoints, distributed, sharding
from tests.multiprocess import run_processes
from tests.training.test_checkpoints import MODEL, _abstract, _assert_bitwise, _cfg, _state

NUM_PROCESSES, LOCAL_DEVICES = 2, 4


def _batches(process_id: int):
    """Each process reads its own rows, as ``ShardByJaxProcess`` slicing does."""
    ds = grain.MapDataset.range(64)[process_id::NUM_PROCESSES]
    return ds.shuffle(seed=5).batch(2).to_iter_dataset()


def _same_local_shards(got, want) -> bool:
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        for sa, sb in zip(a.addressable_shards, b.addressable_shards, strict=True):
            if sa.index != sb.index or not np.array_equal(np.asarray(sa.data), np.asarray(sb.data)):
                return False
    return True


def checkpoint_job(coordinator_address: str, num_processes: int, process_id: int, workdir: str):
    """Save at steps 1 and 3 (iterators at different places per process), corrupt
    step 3, restore: both processes must fall back to step 1 together."""
    from jax.experimental import multihost_utils

    from etam_jax.training.preemption import PreemptionHandler

    distributed.initialize(coordinator_address, num_processes, process_id)
    state = _state(sharding.make_mesh((1, NUM_PROCESSES * LOCAL_DEVICES, 1)))
    it = iter(_batches(process_id))
    for _ in range(1 + process_id):
        next(it)
    with checkpoints.Checkpointer(workdir, _cfg(), MODEL) as ckpt:
        ckpt.save(1, state, it)  # state.step is 1
        after_step_1 = [next(it).tolist() for _ in range(3)]
        ckpt.save(3, state, it)
    if process_id == 0:
        for f in glob.glob(
            os.path.join(workdir, "checkpoints", "3", "state", "**", "d", "*"), recursive=True
        ):
            os.truncate(f, 7)
    multihost_utils.sync_global_devices("corrupted")
    resumed = iter(_batches(process_id))
    with checkpoints.Checkpointer(workdir, _cfg(), MODEL) as ckpt:
        got = ckpt.restore(_abstract(state), resumed)
        steps = ckpt.all_steps()
    with PreemptionHandler() as handler:
        stop = handler.should_stop(5)  # the preemption service's sync point: not reached
    result = {
        "step": int(got.step),
        "bitwise": _same_local_shards(got, state),
        "data": [next(resumed).tolist() for _ in range(3)] == after_step_1,
        "steps": steps,
        "stop": stop,
        "data_files": sorted(
            glob.glob("*.json", root_dir=os.path.join(workdir, "checkpoints", "1", "data"))
        ),
    }
    jax.distributed.shutdown()
    return result


def test_two_processes_save_and_restore(tmp_path):
    outputs = run_processes(
        "tests.training.test_checkpoints_multiprocess:checkpoint_job",
        NUM_PROCESSES,
        devices_per_process=LOCAL_DEVICES,
        kwargs={"workdir": str(tmp_path)},
        timeout=240,
        fast_compile=False,  # the state is compared bitwise with one computed here
    )
    for out in outputs:
        assert out.result == {
            "step": 1,
            "bitwise": True,
            "data": True,
            "steps": [1],
            "stop": False,
            "data_files": ["process_0-of-2.json", "process_1-of-2.json"],
        }, out.process_id
    assert "does not restore" in outputs[0].stderr  # the fallback was logged
    # Written by 2 processes, read by 1 on another mesh: only the arrays (the
    # iterator files are per process).
    state = _state(sharding.make_mesh((1, 8, 1)))
    mesh4 = sharding.make_mesh((1, 2, 2), jax.devices()[:4])
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), state)
    with checkpoints.Checkpointer(tmp_path, _cfg(), MODEL) as ckpt:
        got = ckpt.restore(_abstract(abstract, sharding.tree_shardings(abstract, mesh4)))
    _assert_bitwise(got, state)
