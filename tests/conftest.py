"""Test setup: 8 fake CPU devices, one compilation cache, absl flags parsed (grain reads them).

Under pytest-xdist each worker gets its share of the cores: XLA's and torch's
thread pools otherwise each size themselves to every core, and on a 2-core
machine two workers spin against each other (measured: `-n 2` no faster than
one process). Child processes the tests start inherit the limits.
"""

import os

_workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _workers > 1:
    _threads = str(max(1, (os.cpu_count() or 1) // _workers))
    for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(_name, _threads)
    if _threads == "1":
        os.environ["XLA_FLAGS"] = " ".join(
            [
                os.environ.get("XLA_FLAGS", "--xla_force_host_platform_device_count=8"),
                "--xla_cpu_multi_thread_eigen=false",
                "intra_op_parallelism_threads=1",
            ]
        )
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

# One persistent compilation cache for the session: the controller makes it before
# the workers start, and they and the child processes inherit it (unless a test
# sets its own), so a program compiled twice (the same model functions at the same
# shapes in several files or processes) compiles once: measured 89 cache hits,
# ~110 s of compile saved in the two workers. The key covers the HLO, the devices
# and the XLA flags, so a hit runs the executable a miss would have built.
if "PYTEST_XDIST_WORKER" not in os.environ and "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    import atexit
    import shutil
    import tempfile

    _cache = tempfile.mkdtemp(prefix="etam-jax-test-cache-")
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _cache
    atexit.register(shutil.rmtree, _cache, ignore_errors=True)

from absl import flags  # noqa: E402

flags.FLAGS.mark_as_parsed()

# The longest files first (measured: each 2-7 min on 2 cores), so that with
# `--dist loadfile` the two workers finish together instead of one running
# the last long file alone.
LONGEST_FIRST = (
    "tests/training/test_train_loop.py",
    "tests/convert/test_trained_checkpoints.py",
    "tests/inference/test_video_predictor.py",
    "tests/training/test_multihost_train.py",
    "tests/sweep/test_sweep_e2e.py",
    "tests/inference/test_track_prompt_matrix.py",
    "tests/training/test_train_step.py",
    "tests/training/test_train_step_official.py",
    "tests/inference/test_segment_prompt_matrix.py",
    "tests/bench/test_bench_train.py",
    "tests/models/test_tracker.py",
)


def pytest_collection_modifyitems(config, items):
    del config
    rank = {path: i for i, path in enumerate(LONGEST_FIRST)}

    def key(item):
        path = item.nodeid.split("::", 1)[0]
        return rank.get(path, len(rank))

    items.sort(key=key)  # stable: the order within a file and among the rest is kept
