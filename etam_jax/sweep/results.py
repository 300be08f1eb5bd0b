"""The sweep's results: one row per point, as CSV, Markdown and a plot.

Row fields (``COLUMNS``): ``point, model, image_size, window, correction,
J&F, mem_attn_gflops, latency_ms, train_steps``. ``J&F`` comes from
``etam eval``'s ``summary.json`` (0-100 or 0-1, as eval writes it),
the cost from the bench stage (:mod:`etam_jax.sweep.bench`), the steps from
the last ``step`` in ``metrics.jsonl``.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from etam_jax.errors import EtamError
from etam_jax.sweep.definition import Point
from etam_jax.sweep.files import write_text

COLUMNS = (
    "point",
    "model",
    "image_size",
    "window",
    "correction",
    "J&F",
    "mem_attn_gflops",
    "latency_ms",
    "train_steps",
)
_MARKERS = {1: "o", 2: "s", 4: "^"}  # by pooling window
_COLORS = {"none": "tab:blue", "eq5": "tab:orange", "eq6": "tab:green"}  # by correction


def last_step(metrics: Path) -> int | None:
    """The largest ``step`` logged in a ``metrics.jsonl`` (None without one)."""
    if not metrics.is_file():
        return None
    steps = [
        json.loads(line).get("step") for line in metrics.read_text().splitlines() if line.strip()
    ]
    steps = [s for s in steps if s is not None]
    return int(max(steps)) if steps else None


def point_row(point: Point, summary: dict, bench: dict, metrics: Path) -> dict:
    """The table row of ``point`` from its eval summary, bench record and training metrics."""
    if "J&F" not in summary:
        raise EtamError(f"point {point.name}: eval summary has no 'J&F' (keys {sorted(summary)})")
    return {
        "point": point.name,
        "model": point.model,
        "image_size": point.image_size,
        "window": point.window,
        "correction": point.correction,
        "J&F": float(summary["J&F"]),
        "mem_attn_gflops": bench["mem_attn_flops"] / 1e9,
        "latency_ms": bench["latency_ms"],
        "train_steps": last_step(metrics),
    }


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1e4 else f"{value:.0f}"
    return "" if value is None else str(value)


def to_csv(rows: list[dict]) -> str:
    """Rows as CSV with a header line; full float precision."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: row[k] for k in COLUMNS} for row in rows)
    return out.getvalue()


def to_markdown(rows: list[dict]) -> str:
    """Rows as a Markdown table (4 significant digits)."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_cell(row[k]) for k in COLUMNS) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _scatter(ax, rows: list[dict], key: str, label: str, models: list[str]) -> None:
    """J&F against ``row[key]`` on ``ax``: one labelled marker per row (see :func:`plot`)."""
    for row in rows:
        color = _COLORS.get(row["correction"], "tab:gray")
        face = "none" if models.index(row["model"]) > 0 else color
        xy = (row[key], row["J&F"])
        ax.scatter(
            *xy, marker=_MARKERS.get(row["window"], "D"), s=60, edgecolors=color, facecolors=face
        )
        ax.annotate(row["point"], xy, textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xlabel(label)
    ax.set_ylabel("J&F")
    ax.grid(alpha=0.3)


def plot(rows: list[dict], path: Path) -> None:
    """J&F against memory-attention GFLOPs/frame and against ms/frame, one labelled marker per point.

    Marker shape = pooling window, colour = correction, hollow = models after the first (s).
    """
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), constrained_layout=True)
    models = list(dict.fromkeys(row["model"] for row in rows))  # the first model filled
    _scatter(axes[0], rows, "mem_attn_gflops", "memory attention GFLOPs / frame", models)
    _scatter(axes[1], rows, "latency_ms", "memory attention ms / frame", models)
    legend = (
        "memory pooling: shape = window (o 1, square 2, ^ 4), colour = correction (none/eq5/eq6)"
    )
    fig.suptitle(legend + (f", hollow = {', '.join(models[1:])}" if len(models) > 1 else ""))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_results(rows: list[dict], workdir: Path) -> list[Path]:
    """Writes ``results.csv``, ``results.md`` and ``results.png`` under ``workdir``; returns the paths."""
    paths = [workdir / "results.csv", workdir / "results.md", workdir / "results.png"]
    write_text(paths[0], to_csv(rows))
    write_text(paths[1], to_markdown(rows))
    plot(rows, paths[2])
    return paths
