"""`etam convert from-pytorch|to-pytorch`: official .pt <-> etam Orbax weights directory.

    etam convert from-pytorch --model NAME IN.pt OUT_DIR
    etam convert to-pytorch   --model NAME IN_DIR OUT.pt

Every key and shape is checked before anything is written; a missing key, an
unexpected key or a wrong shape is an error naming the key, and no output
appears. The round trip is bitwise exact.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from etam_jax.convert.checkpoint_io import load_model, read_pt, save_orbax, write_pt
from etam_jax.convert.naming import load_torch_arrays, to_torch_arrays
from etam_jax.errors import EtamError
from etam_jax.models.build import abstract_model
from etam_jax.models.configs import get_model_config


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="etam convert", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="direction", required=True)
    for name, src, dst in (
        (
            "from-pytorch",
            "official {'model': state_dict} .pt file",
            "Orbax weights directory to create",
        ),
        (
            "to-pytorch",
            "etam weights directory, or an etam train workdir / checkpoint step",
            ".pt file to write",
        ),
    ):
        p = sub.add_parser(name)
        p.add_argument("--model", required=True, help="official model name, e.g. efficienttam_ti")
        p.add_argument("input", type=Path, help=src)
        p.add_argument("output", type=Path, help=dst)
    return parser


def from_pytorch(model_name: str, pt_path: Path, out_dir: Path) -> None:
    """Official .pt -> etam Orbax directory."""
    get_model_config(model_name)  # unknown names fail before reading anything
    if out_dir.exists():
        raise EtamError(f"{out_dir}: already exists; refusing to overwrite")
    arrays = read_pt(pt_path)
    model = abstract_model(model_name)
    load_torch_arrays(model, arrays, source=str(pt_path))
    save_orbax(model, model_name, out_dir)


def to_pytorch(model_name: str, ckpt_dir: Path, pt_path: Path) -> None:
    """etam weights directory or training checkpoint -> official .pt."""
    get_model_config(model_name)
    write_pt(to_torch_arrays(load_model(model_name, ckpt_dir)), pt_path)


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    convert = from_pytorch if args.direction == "from-pytorch" else to_pytorch
    convert(args.model, args.input, args.output)
    print(f"wrote {args.output}")
    return 0
