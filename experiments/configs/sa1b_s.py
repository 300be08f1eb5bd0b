r"""Paper stage 1: SA-1B image pre-training of efficienttam_s.

Set the data paths (and a TPU mesh preset) on the command line, e.g.::

    etam train --config experiments/configs/sa1b_s.py --workdir gs://BUCKET/runs/sa1b_s \
        --config.data.sources.sa1b.path=gs://BUCKET/sa1b_arrayrecord \
        --config.mesh.preset=v5p-64
"""

from __future__ import annotations

from experiments.configs.base import get_base


def get_config(arg: str | None = None):
    del arg
    cfg = get_base("efficienttam_s", "sa1b")

    return cfg
