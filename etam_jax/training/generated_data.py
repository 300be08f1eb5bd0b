"""Data a config generates for itself: ``data.generated`` (the demo's recipe).

A config may name the `etam data synth` calls that make its data
(``data.generated.<folder> = {kinds, seed, count, object_scale[, motion]}``; the
``davis`` kind feeds ``eval.data``, the others the sources of the same name).
`etam train` given no ``--config.data.sources.<name>.path`` (or no
``--config.eval.data``) writes them once under ``WORKDIR/generated_data/``
and trains on them; paths given on the command line always win. Generation
is single-process and local: a multi-process run or a ``gs://`` workdir must
be given its data paths.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import ml_collections

from etam_jax.errors import EtamError

FOLDER = "generated_data"


def missing_paths(cfg: ml_collections.ConfigDict) -> list[str]:
    """The config fields with no data path that ``data.generated`` can fill."""
    kinds = {k for g in cfg.data.get("generated", {}).values() for k in g.kinds.split(",")}
    missing = [f"data.sources.{n}.path" for n, s in cfg.data.sources.items() if not s.path]
    missing = [m for m in missing if m.split(".")[2] in kinds]
    if "davis" in kinds and not cfg.eval.data:
        missing.append("eval.data")
    return missing


def _write(out: Path, recipe: ml_collections.ConfigDict) -> None:
    """One `write_all` call into ``out``, atomically (a partial folder is never reused)."""
    from data_pipelines.synthetic import write_all

    if (out / ".complete").exists():
        return
    tmp = out.with_name(f"{out.name}.partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    logging.info("generating %s data into %s", recipe.kinds, out)
    write_all(
        tmp,
        kinds=recipe.kinds.split(","),
        seed=recipe.seed,
        count=recipe.count,
        object_scale=recipe.object_scale,
        motion=recipe.get("motion"),
    )
    (tmp / ".complete").touch()
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)


def fill_generated_paths(cfg: ml_collections.ConfigDict, workdir: str, num_processes: int) -> None:
    """Points every missing data path of ``cfg`` at data generated under ``workdir``."""
    missing = missing_paths(cfg)
    if not missing:
        return
    if num_processes > 1 or "://" in workdir:
        raise EtamError(
            "this config generates its data only in a single local process; give "
            + ", ".join(f"--config.{m}=DIR" for m in missing)
        )
    root = Path(workdir) / FOLDER
    for folder, recipe in cfg.data.generated.items():
        _write(root / folder, recipe)
        for kind in recipe.kinds.split(","):
            path = str(root / folder / kind)
            if kind == "davis" and "eval.data" in missing:
                cfg.eval.data = path
            elif f"data.sources.{kind}.path" in missing:
                cfg.data.sources[kind].path = path
