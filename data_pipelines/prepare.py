"""`etam data prepare`: raw SA-1B / SA-V folders -> TFDS datasets in ArrayRecord format.

Writes ``OUT/<sa1b|sav>_records/1.0.0/...`` (a TFDS dataset readable with
`data_pipelines.prepared.PreparedSource`, or any TFDS data source, without
TensorFlow) and ``OUT/prepare_report.json``:
``{"kind", "source", "dataset_dir", "examples", "skipped", "skipped_files": [{"file", "reason"}]}``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Callable, Sequence

import tensorflow_datasets as tfds

from data_pipelines.sa1b_reader import SA1BSource
from data_pipelines.sav_reader import SAVSource
from data_pipelines.tfds_builders import BUILDERS
from etam_jax.errors import EtamError

REPORT = "prepare_report.json"


def raw_source_factory(
    kind: str, source: str | Path, annotations: Sequence[str] = ("manual",)
) -> Callable[[], Any]:
    """A zero-argument constructor of the raw reader for ``kind`` (checked now, built in the builder)."""
    if kind == "sa1b":
        SA1BSource(source)  # fail early, before TFDS creates folders
        return lambda: SA1BSource(source)
    if kind == "sav":
        SAVSource(source, annotations)
        return lambda: SAVSource(source, annotations)
    raise EtamError(f"prepare: unknown dataset {kind!r}, expected one of {sorted(BUILDERS)}")


def prepare(
    kind: str,
    source: str | Path,
    out: str | Path,
    annotations: Sequence[str] = ("manual",),
    workers: int = 0,
    check_masks: bool = False,
) -> dict:
    """Prepares one dataset; returns (and writes) the report.

    Args:
        kind: ``"sa1b"`` or ``"sav"``.
        source: the raw folder.
        out: the TFDS ``data_dir`` to write into.
        annotations: SA-V jsons to use.
        workers: processes reading and checking examples (0: this process).
        check_masks: also decode every mask while checking (slower; catches corrupt RLE strings).
    """
    out = Path(out)
    make_source = raw_source_factory(kind, source, annotations)
    builder = BUILDERS[kind](
        make_source=make_source, workers=workers, check_masks=check_masks, data_dir=str(out)
    )
    if Path(builder.data_dir).exists():
        raise EtamError(
            f"prepare: {builder.data_dir} already exists; remove it or choose another --out"
        )
    config = tfds.download.DownloadConfig(compute_stats=tfds.download.ComputeStatsMode.SKIP)
    builder.download_and_prepare(download_config=config, download_dir=str(out / ".tfds_downloads"))
    shutil.rmtree(out / ".tfds_downloads", ignore_errors=True)  # nothing is downloaded
    report = {
        "kind": kind,
        "source": str(source),
        "dataset_dir": str(builder.data_dir),
        "examples": builder.examples,
        "skipped": len(builder.skipped),
        "skipped_files": builder.skipped,
    }
    (out / REPORT).write_text(json.dumps(report, indent=2))
    return report
