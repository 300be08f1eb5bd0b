"""Tracking demo (no training): generated data in the real formats -> official-layout checkpoint
-> Orbax conversion -> `etam track` on a generated video -> PNG masks.

Until training lands (issue 5) the weights are freshly initialised (seeded), so
the masks show that the whole path runs, not a trained tracker.

    python scripts/demo_track.py --out demo_track_out
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from flax import nnx
from PIL import Image


def run(*args: str) -> None:
    print("$", " ".join(args), flush=True)
    subprocess.run(args, check=True)


def write_initial_checkpoint(model_name: str, path: Path) -> None:
    """A seeded, freshly initialised model saved in the official .pt layout."""
    from etam_jax.convert.checkpoint_io import write_pt
    from etam_jax.convert.naming import to_torch_arrays
    from etam_jax.models.build import build_model
    from etam_jax.training.sharding import make_mesh, sharded_init

    build = lambda: build_model(model_name, rngs=nnx.Rngs(0))  # noqa: E731
    graphdef, state = sharded_init(build, make_mesh((1, 1, 1)))
    write_pt(to_torch_arrays(nnx.merge(graphdef, state)), path)


def summarise(masks_dir: Path, frames_dir: Path) -> dict:
    """Per object: frames written and mean foreground fraction."""
    summary = {}
    for obj in sorted(p for p in masks_dir.iterdir() if p.is_dir()):
        pngs = sorted(obj.glob("*.png"))
        fg = [float((np.asarray(Image.open(p)) > 0).mean()) for p in pngs]
        summary[obj.name] = {"frames": len(pngs), "mean_foreground": round(float(np.mean(fg)), 4)}
    summary["_video_frames"] = len(list(frames_dir.glob("*.jpg")))
    return summary


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=Path("demo_track_out"))
    p.add_argument("--model", default="efficienttam_ti_512x512", help="official model name")
    p.add_argument("--frames", type=int, default=8)
    args = p.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    etam = [sys.executable, "-m", "etam_jax.cli"]
    start = time.time()

    run(*etam, "data", "synth", "--out", str(args.out / "data"), "--seed", "0")
    from etam_jax.inference.demo_video import write_demo_video

    frames, prompts = write_demo_video(str(args.out / "video"), args.frames)
    print(f"wrote {args.frames} frames to {frames} and prompts to {prompts}")
    pt = args.out / "weights" / f"{args.model}_init.pt"
    write_initial_checkpoint(args.model, pt)
    print(f"wrote {pt} (official {{'model': state_dict}} layout, seeded init)")
    orbax_dir = args.out / "weights" / f"{args.model}_orbax"
    run(*etam, "convert", "from-pytorch", "--model", args.model, str(pt), str(orbax_dir))
    run(
        *etam,
        "track",
        "--model",
        args.model,
        "--checkpoint",
        str(orbax_dir),
        "--frames",
        frames,
        "--prompts",
        prompts,
        "--out",
        str(args.out / "masks"),
        "--save-logits",
    )
    summary = summarise(args.out / "masks", Path(frames))
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps(summary, indent=1))
    print(f"demo done in {time.time() - start:.0f} s; outputs under {args.out}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
