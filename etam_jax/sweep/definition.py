"""What a sweep is: points (a name and training-config overrides) over one base config.

A sweep file (``experiments/sweeps/NAME.py``) defines ``get_sweep(variant)``
returning a :class:`Sweep`; `etam sweep` loads it by path. Override values
and ``eval_data`` may hold ``{data}``, replaced by ``etam sweep --data DIR``
(a folder laid out as ``etam data synth`` writes it: ``sa1b/``, ``sav/``,
``davis/``).
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

from etam_jax.errors import EtamError
from etam_jax.models.configs import MODEL_NAMES, POOL_CORRECTIONS
from etam_jax.sweep.files import import_file

DATA_PLACEHOLDER = "{data}"
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


@dataclasses.dataclass(frozen=True)
class Point:
    """One run of the sweep.

    Attributes:
      name: folder name under the sweep's workdir (letters, digits, ``_.-``).
      config: training config file (``get_config()``), relative to the checkout root.
      model: official model name (``efficienttam_ti``, ...).
      image_size: training and evaluation resolution.
      window: ``memory_attention.pool_window`` (1 = no pooling).
      correction: ``memory_attention.pool_correction``.
      overrides: training-config overrides, keyed by the dotted path under
        ``config.`` (``{"model.name": "efficienttam_ti", ...}``).
    """

    name: str
    config: str
    model: str
    image_size: int
    window: int
    correction: str
    overrides: dict[str, Any]


@dataclasses.dataclass(frozen=True)
class Sweep:
    """A list of points evaluated on one dataset.

    Attributes:
      points: the runs, names unique.
      eval_data: DAVIS-layout folder for the eval stage (may hold ``{data}``).
    """

    points: tuple[Point, ...]
    eval_data: str


def pooling_point(
    model: str, config: str, image_size: int, pooling: tuple[int, str], common: dict[str, Any]
) -> Point:
    """The point training ``model`` from ``config`` at ``image_size`` with memory pooling.

    Args:
      model: official model name; ``config`` must build this model.
      config: training config file.
      image_size: resolution of the model and of the augmented training data.
      pooling: ``(pool_window, pool_correction)``.
      common: overrides shared by the sweep's points (applied first).

    Named ``<trunk>_w<window>_<correction>`` (``ti_w2_eq5``); the overrides
    after ``common`` are ``model.name``, ``model.image_size``,
    ``data.augment.resolution``, ``model.memory_attention.pool_window`` and
    ``model.memory_attention.pool_correction``.
    """
    window, correction = pooling
    if model not in MODEL_NAMES:
        raise EtamError(f"sweep point: unknown model {model!r}; known: {', '.join(MODEL_NAMES)}")
    if correction not in POOL_CORRECTIONS or window < 1:
        raise EtamError(f"sweep point: bad pooling window {window} / correction {correction!r}")
    overrides = dict(common)
    overrides.update(
        {
            "model.name": model,
            "model.image_size": image_size,
            "data.augment.resolution": image_size,
            "model.memory_attention.pool_window": window,
            "model.memory_attention.pool_correction": correction,
        }
    )
    name = f"{MODEL_NAMES[model][0]}_w{window}_{correction}"
    return Point(name, config, model, image_size, window, correction, overrides)


def override_flags(overrides: dict[str, Any], data: str | None) -> list[str]:
    """``--config.<path>=<value>`` flags, ``{data}`` substituted (see :func:`fill_data`)."""
    return [
        f"--config.{key}={fill_data(_flag_value(value), data)}" for key, value in overrides.items()
    ]


def _flag_value(value: Any) -> str:
    """A flag value as `etam train`'s config loader parses it: bools as true/false, others str()."""
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def fill_data(text: str, data: str | None) -> str:
    """``text`` with ``{data}`` replaced by ``data``; an EtamError if needed and missing."""
    if DATA_PLACEHOLDER not in text:
        return text
    if data is None:
        raise EtamError(
            f"the sweep needs --data DIR (its settings refer to {DATA_PLACEHOLDER}: {text!r})"
        )
    return text.replace(DATA_PLACEHOLDER, str(data).rstrip("/"))


def load_sweep(path: str | Path, variant: str) -> Sweep:
    """Imports the sweep file at ``path`` and calls its ``get_sweep(variant)``."""
    sweep = import_file(Path(path), "get_sweep").get_sweep(variant)
    check_sweep(sweep, str(path))
    return sweep


def check_sweep(sweep: Sweep, where: str) -> None:
    """Raises EtamError on a bad or duplicate point name."""
    names = [p.name for p in sweep.points]
    bad = [n for n in names if not _NAME.match(n)]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if bad or dupes or not names:
        raise EtamError(
            f"{where}: point names must be unique [A-Za-z0-9_.-]+; bad {bad}, duplicated {dupes}"
        )


def select_points(sweep: Sweep, only: str | None) -> list[Point]:
    """The points named in the comma-separated ``only`` (all when None), in sweep order."""
    if not only:
        return list(sweep.points)
    wanted = [n for n in only.split(",") if n]
    known = {p.name for p in sweep.points}
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise EtamError(
            f"--only: unknown point(s) {unknown}; the sweep has {', '.join(sorted(known))}"
        )
    return [p for p in sweep.points if p.name in wanted]
