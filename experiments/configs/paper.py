r"""The paper's two training stages for efficienttam_ti and efficienttam_s, one file.

``get_config("stage=sa1b|sav,model=ti|s")`` (default ``stage=sav,model=ti``):
stage 1 is SA-1B image pre-training (90k steps), stage 2 SA-V videos + 10%
SA-1B images (300k steps), initialised from stage 1. Set the data paths (and a
TPU mesh preset) on the command line, e.g.::

    etam train --config experiments/configs/paper.py:stage=sa1b,model=ti \
        --workdir gs://BUCKET/runs/sa1b_ti \
        --config.data.sources.sa1b.path=gs://BUCKET/sa1b_arrayrecord --config.mesh.preset=v5p-64
    etam train --config experiments/configs/paper.py:stage=sav,model=ti \
        --workdir gs://BUCKET/runs/sav_ti --config.checkpoint.init_from=gs://BUCKET/runs/sa1b_ti \
        --config.data.sources.sav.path=gs://BUCKET/sav_arrayrecord \
        --config.data.sources.sa1b.path=gs://BUCKET/sa1b_arrayrecord --config.mesh.preset=v5p-64
"""

from __future__ import annotations

from etam_jax.errors import EtamError
from experiments.configs.base import get_base

MODELS = {"ti": "efficienttam_ti", "s": "efficienttam_s"}
STAGES = ("sa1b", "sav")


def parse_arg(arg: str | None) -> dict[str, str]:
    """``"stage=sav,model=s"`` -> ``{"stage": "sav", "model": "s"}`` over the defaults."""
    args = {"stage": "sav", "model": "ti"}
    allowed = {"stage": STAGES, "model": tuple(MODELS)}
    for item in filter(None, (arg or "").split(",")):
        key, eq, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not eq or key not in allowed:
            raise EtamError(f"paper.py: bad argument {item!r}; expected stage=sa1b|sav,model=ti|s")
        if value not in allowed[key]:
            raise EtamError(f"paper.py: {key}={value!r}; expected one of {', '.join(allowed[key])}")
        args[key] = value
    return args


def get_config(arg: str | None = None):
    args = parse_arg(arg)
    return get_base(MODELS[args["model"]], args["stage"])
