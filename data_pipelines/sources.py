"""Opening a dataset folder as a record source, whatever its form (raw SA-1B, raw SA-V, prepared)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from data_pipelines.prepared import PreparedSource, is_prepared
from data_pipelines.sa1b_reader import SA1BSource
from data_pipelines.sav_reader import SAVSource
from etam_jax.errors import EtamError


def detect_kind(path: str | Path) -> str:
    """``"prepared"``, ``"sav"`` or ``"sa1b"`` for a folder (or an SA-1B tar shard)."""
    path = Path(path)
    if not path.exists():
        raise EtamError(f"data source {path} does not exist")
    if path.is_file():
        if path.suffix == ".tar":
            return "sa1b"
        raise EtamError(f"data source {path}: expected a folder or an SA-1B .tar shard")
    if is_prepared(path):
        return "prepared"
    if next(path.rglob("sav_*.mp4"), None) is not None:
        return "sav"
    if (
        next(path.rglob("*.tar"), None) is not None
        or next(path.rglob("sa_*.json"), None) is not None
    ):
        return "sa1b"
    raise EtamError(
        f"data source {path}: found no prepared dataset, sav_*.mp4 videos, "
        "or SA-1B *.tar / sa_*.json files"
    )


def open_source(path: str | Path, annotations: Sequence[str] = ("manual",)) -> Any:
    """A random-access record source (``len``, ``[i]``) for ``path``, found by `detect_kind`.

    Args:
        path: raw SA-1B (tars or extracted), raw SA-V train, or a prepared dataset.
        annotations: SA-V jsons to use (raw SA-V only).
    """
    kind = detect_kind(path)
    if kind == "prepared":
        return PreparedSource(path)
    if kind == "sav":
        return SAVSource(path, annotations)
    return SA1BSource(path)
