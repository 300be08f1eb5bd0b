"""One figure of a training run from its ``metrics.jsonl``: the losses and validation J&F.

Left: the training loss and its parts (focal x20, dice, IoU, object score:
unweighted, per object, summed over a clip's frames) against the step, log
scale. Right: validation J&F against the step, with a baseline (e.g. copying
the first-frame mask, `etam eval --baseline copy-first-mask`) as a dashed line.
"""

from __future__ import annotations

import json
from pathlib import Path

from etam_jax.errors import EtamError

LOSS_KEYS = ("loss", "loss_mask", "loss_dice", "loss_iou", "loss_class")


def read_rows(metrics: str | Path) -> list[dict]:
    """The rows of a ``metrics.jsonl``."""
    path = Path(metrics)
    if not path.is_file():
        raise EtamError(f"{path}: no such metrics file (etam train writes WORKDIR/metrics.jsonl)")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def plot_run(metrics: str | Path, out: str | Path, baseline: float | None = None) -> Path:
    """Writes the figure of ``metrics`` to ``out`` (PNG); returns its path."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    rows = read_rows(metrics)
    train = [r for r in rows if "loss" in r]
    val = [r for r in rows if r.get("val_J&F") is not None]
    if not train:
        raise EtamError(f"{metrics}: no training rows (a 'loss' field) to plot")
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    for key in LOSS_KEYS:
        steps = [r["step"] for r in train if key in r]
        left.plot(
            steps, [r[key] for r in train if key in r], label=key, lw=2 if key == "loss" else 1
        )
    left.set(xlabel="step", ylabel="loss (per object)", yscale="log", title="training loss")
    left.legend(fontsize=8)
    if val:
        right.plot([r["step"] for r in val], [r["val_J&F"] for r in val], "o-", label="validation")
    if baseline is not None:
        right.axhline(baseline, ls="--", color="gray", label="copy first mask")
    right.set(xlabel="step", ylabel="J&F", ylim=(0, 1), title="validation J&F")
    right.legend(fontsize=8)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
