"""The `etam` command.

Each subcommand lives in its own module exposing ``main(argv) -> int``; only
the module of the subcommand asked for is imported, so `etam data ...` never
imports the model and only `etam convert` (and parity tooling) imports torch.
"""

from __future__ import annotations

import importlib
import sys

from etam_jax.errors import EtamError

# subcommand -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "track": ("etam_jax.inference.track_command", "track objects through a folder of JPEG frames"),
    "segment": ("etam_jax.inference.segment_command", "segment an image from prompts"),
    "convert": ("etam_jax.convert.command", "convert weights between PyTorch (.pt) and Orbax"),
    "data": ("data_pipelines.command", "synthesise, prepare and inspect datasets"),
    "bench": ("etam_jax.bench.command", "benchmarks: track | data | train"),
    "train": ("etam_jax.training.command", "train from an experiment config"),
    "eval": ("etam_jax.evaluation.command", "semi-supervised VOS evaluation (J&F)"),
    "sweep": ("etam_jax.sweep.command", "run or emit an ablation sweep"),
    "export": ("etam_jax.export.command", "export StableHLO for serving"),
}


def usage() -> str:
    lines = ["usage: etam <command> [args]", "", "commands:"]
    lines += [f"  {name:<9} {text}" for name, (_, text) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"etam: error: unknown command {name!r}\n{usage()}", file=sys.stderr)
        return 2
    module_name = COMMANDS[name][0]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name and module_name.startswith(e.name):
            print(
                f"etam: error: command {name!r} is not built yet ({module_name})", file=sys.stderr
            )
            return 2
        raise
    try:
        return int(module.main(rest) or 0)
    except EtamError as e:
        print(f"etam {name}: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
