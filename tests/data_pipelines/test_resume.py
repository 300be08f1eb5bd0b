"""Exact resume: save the iterator after N batches, restore in a NEW process, next K identical.

Run as a script (``python -m tests.data_pipelines.test_resume MODE DIR``) it is
the saving or the restoring process. State goes through Grain's Orbax
checkpoint handler (what ``grain.checkpoint.CheckpointSave`` uses).
"""

import hashlib
import json
import subprocess
import sys
from pathlib import Path

N, K = 5, 4
ROOT = Path(__file__).resolve().parents[2]


def pipeline(workers: int):
    import grain

    from data_pipelines.clip_sampling import SamplingSpec
    from data_pipelines.pipeline import PipelineSpec, SourceSpec, training_batches
    from data_pipelines.transforms import AugmentSpec
    from tests.data_pipelines.drawn_records import drawn_records, truncated

    videos = drawn_records(4, 3, 2, height=32, width=40) * 25
    videos[7] = truncated(videos[7])  # skip counters are part of the state too
    images = drawn_records(3, 1, 3, "sa1b", height=40, width=32) * 40
    spec = PipelineSpec(
        sources=(
            SourceSpec("sav", 0.6, 2, SamplingSpec(2, 2)),
            SourceSpec("sa1b", 0.4, 3, SamplingSpec(1, 3)),
        ),
        augment=AugmentSpec(resolution=24),
        seed=11,
        workers=workers,
        mix_block=10,
        skip_check_after=10**6,
    )
    return training_batches([videos, images], spec, grain.sharding.NoSharding())


def digest(batch) -> str:
    h = hashlib.sha256()
    for k in sorted(batch):
        h.update(k.encode() + str(batch[k].dtype).encode() + str(batch[k].shape).encode())
        h.update(batch[k].tobytes())
    return h.hexdigest()


def run_process(mode: str, folder: str) -> None:
    from absl import flags

    flags.FLAGS.mark_as_parsed()
    from etils import epath
    from grain.checkpoint import CheckpointHandler

    ckpt = epath.Path(folder) / "data"
    it = iter(pipeline(workers=2))
    if mode == "save":
        for _ in range(N):
            next(it)
        ckpt.mkdir()
        CheckpointHandler().save(ckpt, item=it)
        out = [digest(next(it)) for _ in range(K)] + [it.skipped]
    else:
        CheckpointHandler().restore(ckpt, item=it)
        out = [digest(next(it)) for _ in range(K)] + [it.skipped]
    it.close()
    (Path(folder) / f"{mode}.json").write_text(json.dumps(out))


def test_restore_in_a_new_process(tmp_path):
    for mode in ("save", "restore"):
        subprocess.run(
            [sys.executable, "-m", "tests.data_pipelines.test_resume", mode, str(tmp_path)],
            cwd=ROOT,
            check=True,
            timeout=240,
        )
    uninterrupted = json.loads((tmp_path / "save.json").read_text())
    restored = json.loads((tmp_path / "restore.json").read_text())
    assert restored == uninterrupted
    # The stream does not depend on the worker count: the same batches without workers.
    it = iter(pipeline(workers=0))
    here = [digest(next(it)) for _ in range(N + K)][N:]
    assert here == uninterrupted[:K]


if __name__ == "__main__":
    run_process(sys.argv[1], sys.argv[2])


def test_orbax_composite_item(tmp_path):
    """The iterator as the trainer will checkpoint it: an Orbax Composite ``data`` item."""
    import grain
    import orbax.checkpoint as ocp

    it = iter(pipeline(workers=0))
    for _ in range(2):
        next(it)
    with ocp.CheckpointManager(tmp_path / "ckpt") as mngr:
        mngr.save(2, args=ocp.args.Composite(data=grain.checkpoint.CheckpointSave(it)))
        mngr.wait_until_finished()
        want = [digest(next(it)) for _ in range(3)]
        fresh = iter(pipeline(workers=0))
        mngr.restore(2, args=ocp.args.Composite(data=grain.checkpoint.CheckpointRestore(fresh)))
    assert [digest(next(fresh)) for _ in range(3)] == want
