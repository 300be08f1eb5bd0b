r"""Paper stage 2: SA-V videos + 10% SA-1B images of efficienttam_ti.

Set the data paths (and a TPU mesh preset) on the command line, e.g.::

    etam train --config experiments/configs/sav_ti.py --workdir gs://BUCKET/runs/sav_ti \
        --config.data.sources.sav.path=gs://BUCKET/sav_arrayrecord --config.data.sources.sa1b.path=gs://BUCKET/sa1b_arrayrecord \
        --config.mesh.preset=v5p-64
"""

from __future__ import annotations

from experiments.configs.base import get_base


def get_config(arg: str | None = None):
    del arg
    cfg = get_base("efficienttam_ti", "sav")
    cfg.checkpoint.init_from = (
        ""  # stage 1: --config.checkpoint.init_from=STAGE1_WORKDIR (or a .pt)
    )
    return cfg
