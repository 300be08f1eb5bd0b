"""The memory-token pooling ablation (EfficientTAM, Eq. 5 / Eq. 6).

Grid: pooling window 1 (none), 2, 4 x logit correction none / eq5 / eq6 x
model ti / s. Window 1 pools nothing, so a correction there changes nothing
(``pooled_attention.spatial_keys`` ignores it): window 1 appears once, with
``none``. That is 7 points per model. The official ``_1`` / ``_2`` checkpoints
are the points ``w2_eq5`` / ``w2_eq6``.

Cost column: XLA's FLOPs of the memory attention as implemented. With 7
memory slots window 4 leaves 7 g^2/16 spatial keys, but the key buffer is
g^2 long (it also holds the one-memory fallback, which attends unpooled:
``pooled_attention.spatial_keys``), so window 4 costs g^2 + 64 keys per
query, not 7 g^2/16 + 64.

Variants (``etam sweep experiments/sweeps/memory_pooling.py --variant V --data DIR``,
DIR holding ``sa1b/``, ``sav/`` and ``davis/`` as ``etam data synth`` writes them):

- ``full`` (default): ti and s at 1024 with the paper's stage-2 configs
  (``paper.py:stage=sav,model=ti`` / ``model=s``), 14 points; evaluated on ``DIR/davis``.
- ``local``: the 7 ti points with ``demo.py`` (the small ti-shaped model
  that trains on generated data in minutes on a CPU) at its 64 px (a 4 x 4
  feature grid: window 2 leaves 2 x 2 tokens per memory frame, window 4 one),
  ``LOCAL_STEPS`` steps each. Generate DIR as the demo does:
  ``etam data synth --out DIR --kinds sa1b,sav --count 96 --object-scale 1.6`` and
  ``etam data synth --out DIR --kinds davis --seed 1 --count 3 --object-scale 1.6``.
- ``ci``: 2 points (w1_none, w2_eq5) with ``tiny.py`` (2 trunk blocks, 1
  memory-attention layer, 64 px, 2-frame clips), 2 training steps.
"""

from __future__ import annotations

from etam_jax.errors import EtamError
from etam_jax.sweep.definition import Sweep, pooling_point
from experiments.configs import demo

CONFIGS = {
    "efficienttam_ti": "experiments/configs/paper.py:stage=sav,model=ti",
    "efficienttam_s": "experiments/configs/paper.py:stage=sav,model=s",
}
DEMO_CONFIG = "experiments/configs/demo.py"
WINDOWS = (1, 2, 4)
CORRECTIONS = ("none", "eq5", "eq6")

_DATA = {"data.sources.sav.path": "{data}/sav", "data.sources.sa1b.path": "{data}/sa1b"}
LOCAL_STEPS = 650  # half the demo's run: 7 points in ~35 min on 2 cores
_LOCAL = {
    **_DATA,
    "train.total_steps": LOCAL_STEPS,
    "eval.every_steps": LOCAL_STEPS,
    "eval.at_start": False,
}
# ci: experiments/configs/tiny.py (2-block trunk, 1 memory-attention layer, 64 px, 2-frame SA-V
# clips of one object: one compiled step) for 2 steps.
TINY_CONFIG = "experiments/configs/tiny.py"
_TINY = {
    "data.sources.sav.path": "{data}/sav",
    "train.total_steps": 2,
    "optimizer.warmup_steps": 1,
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
    if variant == "full":
        points = [
            pooling_point(model, CONFIGS[model], 1024, (window, correction), _DATA)
            for model, window, correction in grid(tuple(CONFIGS), WINDOWS)
        ]
    elif variant in ("local", "ci"):
        config, size, common = (
            (TINY_CONFIG, 64, _TINY) if variant == "ci" else (DEMO_CONFIG, demo.SIZE, _LOCAL)
        )
        points = [
            pooling_point(model, config, size, (window, correction), common)
            for model, window, correction in grid(("efficienttam_ti",), WINDOWS)
        ]
        if variant == "ci":  # no pooling, and the official _1 (window 2, eq5)
            points = [p for p in points if p.name in ("ti_w1_none", "ti_w2_eq5")]
    else:
        raise EtamError(f"memory_pooling --variant: expected full, local or ci, found {variant!r}")
    return Sweep(points=tuple(points), eval_data="{data}/davis")
