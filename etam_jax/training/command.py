"""``etam train --config FILE.py --workdir DIR [--config.field=value ...]``.

Multi-host: on Cloud TPU every host runs the same command and JAX finds its
peers by itself; elsewhere (GPU or CPU clusters, local multi-process tests)
pass ``--coordinator_address HOST:PORT --num_processes N --process_id I``.
Running the same command again resumes from the latest checkpoint.
"""

from __future__ import annotations

import argparse
import json
import logging

from etam_jax.training.config_loader import load_config, split_overrides


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    rest, overrides = split_overrides(argv)
    parser = argparse.ArgumentParser(prog="etam train", description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="experiments/configs/NAME.py[:ARG]")
    parser.add_argument("--workdir", required=True, help="run directory (local path or gs://)")
    parser.add_argument("--coordinator_address", default=None, help="HOST:PORT of process 0")
    parser.add_argument("--num_processes", type=int, default=None)
    parser.add_argument("--process_id", type=int, default=None)
    return parser.parse_args(rest), overrides


def main(argv: list[str]) -> int:
    args, overrides = parse_args(argv)
    cfg = load_config(args.config, overrides)  # typos fail here, before JAX starts
    # pylint: disable=import-outside-toplevel
    from etam_jax.training import distributed

    multi = distributed.initialize(args.coordinator_address, args.num_processes, args.process_id)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("absl").setLevel(logging.WARNING)
    import jax

    from etam_jax.training.generated_data import fill_generated_paths
    from etam_jax.training.train_loop import Trainer

    fill_generated_paths(cfg, args.workdir, jax.process_count())

    try:
        last = Trainer(cfg, args.workdir).run()
    finally:
        if multi:  # a clean exit of every process (a coordinator left alone can hang at exit)
            jax.distributed.shutdown()
    if last:
        print(json.dumps(last, default=str))
    return 0
