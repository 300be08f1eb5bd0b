"""run_plot: a training run's metrics.jsonl drawn as one PNG; clear errors on bad input."""

import json

import numpy as np
import pytest
from PIL import Image

from etam_jax.errors import EtamError
from etam_jax.training.run_plot import plot_run


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_losses_and_validation_with_a_baseline(tmp_path):
    rows = [{"step": 0, "val_J&F": 0.1}]
    rows += [{"step": s, "loss": 4.0 / s, "loss_dice": 1.0 / s, "lr": 1e-4} for s in range(1, 60)]
    rows += [{"step": 60, "val_J&F": 0.5}]
    out = plot_run(_write(tmp_path / "metrics.jsonl", rows), tmp_path / "f" / "c.png", 0.4)
    image = np.asarray(Image.open(out).convert("RGB")).astype(int)
    assert image.shape == (420, 1100, 3)

    def pixels(panel, rgb):
        return (np.abs(panel - np.array(rgb)).sum(-1) < 30).sum()

    left, right = image[:, :550], image[:, 550:]
    blue, gray = (31, 119, 180), (128, 128, 128)  # the first line's colour; the baseline's
    assert pixels(left, blue) > 200 and pixels(right, blue) > 50  # loss curve; J&F points
    assert pixels(right, gray) > 200 and pixels(left, gray) < pixels(right, gray)


def test_bad_input_names_the_file(tmp_path):
    with pytest.raises(EtamError, match="no such metrics file"):
        plot_run(tmp_path / "missing.jsonl", tmp_path / "c.png")
    only_val = _write(tmp_path / "m.jsonl", [{"step": 0, "val_J&F": 0.1}])
    with pytest.raises(EtamError, match=r"m.jsonl: no training rows"):
        plot_run(only_val, tmp_path / "c.png")
