"""Two local JAX processes: disjoint, together complete shards; same batch kinds; global batch.

Run as a script (``python -m tests.data_pipelines.test_multiprocess ID PORT OUT``)
it is one of the two processes.
"""

import json
import subprocess
import sys
from pathlib import Path

from tests.child_env import ROOT, child_env
from tests.multiprocess import free_port

NUM_RECORDS = 11  # odd: the two shards differ in size


def run_process(process_id: int, port: int, out: str) -> None:
    from absl import flags

    flags.FLAGS.mark_as_parsed()
    import grain
    import jax
    import numpy as np

    jax.distributed.initialize(f"127.0.0.1:{port}", 2, process_id)
    from data_pipelines.clip_sampling import SamplingSpec
    from data_pipelines.global_batch import to_global_batch
    from data_pipelines.pipeline import PipelineSpec, SourceSpec, mixed_batches, source_batches
    from data_pipelines.transforms import AugmentSpec
    from tests.data_pipelines.drawn_records import drawn_records

    videos = drawn_records(NUM_RECORDS, 2, 1, height=24, width=24)
    images = drawn_records(4, 1, 2, "sa1b", height=24, width=24)
    spec = PipelineSpec(
        sources=(
            SourceSpec("sav", 0.7, 2, SamplingSpec(2, 1)),
            SourceSpec("sa1b", 0.3, 2, SamplingSpec(1, 2)),
        ),
        augment=AugmentSpec.resize_only(16),
        seed=1,
        mix_block=20,
    )
    shard = grain.sharding.ShardByJaxProcess()
    # One epoch of this shard, one example per batch: every record of the shard once.
    one = source_batches(
        videos, SourceSpec("sav", 1.0, 1, SamplingSpec(2, 1)), spec.augment, 0, shard
    )
    size = len(range(shard.shard_index, NUM_RECORDS, shard.shard_count))
    ids = sorted(int(one[i]["object_ids"][0, 0]) // 100 for i in range(size))
    # Repeated lists: Grain's index_shuffle is slow (~20 ms/index) on a few elements only.
    mixed = mixed_batches([videos * 20, images * 50], spec)  # ShardByJaxProcess by default
    kinds = [int(mixed[i]["frames"].shape[1]) for i in range(30)]
    local = mixed[0]
    mesh = jax.make_mesh((4,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
    glob = to_global_batch(local, mesh)
    shards = sorted(glob["frames"].addressable_shards, key=lambda s: s.index[0].start)
    mine = np.concatenate([np.asarray(s.data) for s in shards])
    Path(out).write_text(
        json.dumps(
            {
                "shard": [shard.shard_index, shard.shard_count],
                "ids": ids,
                "kinds": kinds,
                "global": list(glob["masks"].shape),
                "local": list(local["masks"].shape),
                "local_rows_match": bool(np.array_equal(mine, local["frames"])),
            }
        )
    )
    jax.distributed.shutdown()


def test_two_processes(tmp_path):
    port = free_port()
    env = child_env(devices=2)
    outs = [tmp_path / f"p{i}.json" for i in range(2)]
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.data_pipelines.test_multiprocess",
                str(i),
                str(port),
                str(outs[i]),
            ],
            cwd=ROOT,
            env=env,
        )
        for i in range(2)
    ]
    for p in procs:
        assert p.wait(timeout=240) == 0
    r0, r1 = (json.loads(o.read_text()) for o in outs)
    assert r0["shard"] == [0, 2] and r1["shard"] == [1, 2]
    assert not set(r0["ids"]) & set(r1["ids"])  # disjoint
    assert sorted(r0["ids"] + r1["ids"]) == list(range(NUM_RECORDS))  # together complete
    assert r0["kinds"] == r1["kinds"] and set(r0["kinds"]) == {1, 2}  # same batch kind per step
    for r in (r0, r1):
        assert r["global"] == [2 * r["local"][0], *r["local"][1:]]
        assert r["local_rows_match"]


if __name__ == "__main__":
    run_process(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3])
