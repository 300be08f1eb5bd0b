"""Launch commands of a sweep's training runs, one line per point (`etam sweep --emit-launch`).

``local``: the ``etam train`` command line. ``tpu``: the same wrapped in
``python scripts/launch_tpu.py``, which runs it on every host of a TPU VM
(pod). The workdir may be a bucket URL (``gs://...``): every host must see it.
"""

from __future__ import annotations

import posixpath
import shlex
from pathlib import Path

from etam_jax.errors import EtamError
from etam_jax.sweep.definition import Point, Sweep
from etam_jax.sweep.runner import train_argv

LAUNCHERS = ("local", "tpu")
TPU_LAUNCHER = "scripts/launch_tpu.py"


def point_train_dir(workdir: str, point: Point) -> str:
    """``<workdir>/<point>/train`` (workdir a local path or a URL, kept as given)."""
    return posixpath.join(str(workdir), point.name, "train")


def tpu_prefix(tpu_name: str | None, zone: str | None) -> list[str]:
    """The launcher part of a TPU command line (everything before the ``etam`` command)."""
    if not tpu_name:
        raise EtamError("--emit-launch tpu needs --tpu-name NAME")
    return [
        "python",
        TPU_LAUNCHER,
        "--tpu-name",
        tpu_name,
        *(["--zone", zone] if zone else []),
        "--",
    ]


def launch_lines(
    kind: str,
    sweep: Sweep,
    points: list[Point],
    workdir: str | Path,
    data: str | None,
    tpu_name: str | None = None,
    zone: str | None = None,
) -> list[str]:
    """One shell line per point launching its training (nothing is run).

    Args:
      kind: ``local`` or ``tpu``.
      sweep, points: the sweep and the points to launch.
      workdir: the sweep's workdir (path or URL).
      data: value of ``{data}``.
      tpu_name, zone: the TPU VM for ``tpu``.
    """
    if kind not in LAUNCHERS:
        raise EtamError(f"--emit-launch: expected one of {', '.join(LAUNCHERS)}, found {kind!r}")
    prefix = tpu_prefix(tpu_name, zone) if kind == "tpu" else []
    return [
        shlex.join(
            [*prefix, "etam", *train_argv(sweep, point, point_train_dir(str(workdir), point), data)]
        )
        for point in points
    ]
