"""The memory-token pooling ablation (EfficientTAM, Eq. 5 / Eq. 6).

Grid: pooling window 1 (none), 2, 4 x logit correction none / eq5 / eq6 x
model ti / s. Window 1 pools nothing, so a correction there changes nothing
(``pooled_attention.spatial_keys`` ignores it): window 1 appears once, with
``none``. That is 7 points per model. The official ``_1`` / ``_2`` checkpoints
are the points ``w2_eq5`` / ``w2_eq6``.

Variants (``etam sweep experiments/sweeps/memory_pooling.py --variant V``):

- ``full`` (default): ti and s at 1024, the base config's schedule (14 points).
- ``local``: the 7 ti points at 256 px, a few dozen steps on ``etam data
  synth`` data (``--data DIR``): a demo of the whole loop on one machine.
- ``ci``: 2 ti points (w1_none, w2_eq5) at 128 px, 2 steps of tiny clips.
"""

from __future__ import annotations

from etam_jax.errors import EtamError
from etam_jax.sweep.definition import Point, Sweep, pooling_point

BASE_CONFIG = "experiments/configs/efficienttam.py"
MODELS = ("efficienttam_ti", "efficienttam_s")
WINDOWS = (1, 2, 4)
CORRECTIONS = ("none", "eq5", "eq6")

# Data laid out as `etam data synth --out DIR` writes it (or real data arranged alike).
_DATA = {"data.sources.sav.path": "{data}/sav", "data.sources.sa1b.path": "{data}/sa1b"}
_SMALL = {
    "data.workers": 0,
    "data.sources.sav.num_frames": 2,
    "data.sources.sav.max_objects": 1,
    "data.sources.sa1b.max_objects": 1,
}
VARIANTS = {
    # variant: (models, image size, windows, common overrides)
    "full": (MODELS, 1024, WINDOWS, _DATA),
    "local": (MODELS[:1], 256, WINDOWS, {**_DATA, **_SMALL, "train.num_steps": 40}),
    "ci": (MODELS[:1], 128, (1, 2), {**_DATA, **_SMALL, "train.num_steps": 2}),
}


def grid(models: tuple[str, ...], windows: tuple[int, ...]) -> list[tuple[str, int, str]]:
    """(model, window, correction) triples: every correction for pooled windows, ``none`` for 1."""
    return [
        (model, window, correction)
        for model in models
        for window in windows
        for correction in CORRECTIONS
        if window > 1 or correction == "none"
    ]


def get_sweep(variant: str = "full") -> Sweep:
    """The sweep of ``variant`` (``full`` | ``local`` | ``ci``)."""
    if variant not in VARIANTS:
        raise EtamError(
            f"memory_pooling --variant: unknown variant {variant!r}; expected one of {', '.join(VARIANTS)}"
        )
    models, image_size, windows, common = VARIANTS[variant]
    points: list[Point] = [
        pooling_point(model, image_size, window, correction, common)
        for model, window, correction in grid(models, windows)
    ]
    if variant == "ci":  # two points: no pooling and the official _1 (w2, eq5)
        points = [p for p in points if p.name in ("ti_w1_none", "ti_w2_eq5")]
    return Sweep(base_config=BASE_CONFIG, points=tuple(points), eval_data="{data}/davis")
