"""Launch commands of a sweep's training runs, one line per point (`etam sweep --emit-launch`).

``local``: the ``etam train`` command line. ``tpu``: ``python
scripts/launch_tpu.py --name N --zone Z --accelerator-type T --config CONFIG
--workdir W -- <overrides>``, which creates or reuses the slice, installs the
checkout and runs the same ``etam train`` on every host (the launcher adds
the slice's mesh preset). Without ``--detach`` among the launcher arguments
each line returns when its training ends, so the printed lines run as a
script train the points one after another on one slice. A multi-host slice
needs a workdir every host sees (``gs://...``), kept as given.
"""

from __future__ import annotations

import dataclasses
import posixpath
import shlex

from etam_jax.errors import EtamError
from etam_jax.sweep.definition import Point, override_flags
from etam_jax.sweep.runner import train_argv

LAUNCHERS = ("local", "tpu")
TPU_LAUNCHER = "scripts/launch_tpu.py"


@dataclasses.dataclass(frozen=True)
class TpuTarget:
    """The slice the ``tpu`` lines launch on, and extra launcher flags (``--spot``, ``--gcsfuse=B``...)."""

    name: str | None
    zone: str | None
    accelerator_type: str | None
    launcher_args: tuple[str, ...] = ()


def point_train_dir(workdir: str, point: Point) -> str:
    """``<workdir>/<point>/train`` (workdir a local path or a URL, kept as given)."""
    return posixpath.join(str(workdir), point.name, "train")


def tpu_argv(point: Point, train_dir: str, data: str | None, tpu: TpuTarget) -> list[str]:
    """The launcher command training ``point`` on ``tpu``."""
    missing = [f for f, v in (("--tpu-name", tpu.name), ("--zone", tpu.zone),
                              ("--accelerator-type", tpu.accelerator_type)) if not v]  # fmt: skip
    if missing:
        raise EtamError(f"--emit-launch tpu needs {', '.join(missing)}")
    where = ["--name", tpu.name, "--zone", tpu.zone, "--accelerator-type", tpu.accelerator_type]
    run = ["--config", point.config, "--workdir", train_dir, *tpu.launcher_args]
    return ["python", TPU_LAUNCHER, *where, *run, "--", *override_flags(point.overrides, data)]


def launch_lines(
    kind: str,
    points: list[Point],
    workdir: str,
    data: str | None,
    tpu: TpuTarget | None = None,
) -> list[str]:
    """One shell line per point launching its training (nothing is run).

    Args:
      kind: ``local`` or ``tpu``.
      points: the points to launch.
      workdir: the sweep's workdir (path or URL).
      data: value of ``{data}``.
      tpu: the slice, for ``tpu``.
    """
    if kind not in LAUNCHERS:
        raise EtamError(f"--emit-launch: expected one of {', '.join(LAUNCHERS)}, found {kind!r}")
    lines = []
    for point in points:
        train_dir = point_train_dir(workdir, point)
        if kind == "tpu":
            argv = tpu_argv(point, train_dir, data, tpu or TpuTarget(None, None, None))
        else:
            argv = ["etam", *train_argv(point, train_dir, data)]
        lines.append(shlex.join(argv))
    return lines
