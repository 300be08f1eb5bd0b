"""`etam track`: track prompted objects through a folder of JPEG frames.

    etam track --model NAME --checkpoint PATH --frames DIR --prompts PROMPTS.json
               --out DIR [--save-logits] [--reverse]
               [--overlay [--overlay-format mp4|gif] [--overlay-fps FPS]]

Writes ``OUT/<obj_id>/<frame_stem>.png`` (0/255) for every frame an object is
tracked on, and with ``--save-logits`` ``OUT/<obj_id>/<frame_stem>.npy``
(float32 logits at the original frame size). With ``--overlay``, every
tracked frame with all its objects' masks in their colours
(``inference/overlay.py``) as ``OUT/overlay/<frame_stem>.png`` and the video
``OUT/overlay.mp4`` (or ``.gif``), written as frames are produced.

Completeness: everything is written into a sibling folder
``OUT.partial-<pid>`` that is renamed to ``OUT`` only after the last frame;
on any error the partial folder is removed, so ``OUT`` exists only when it is
complete. An existing non-empty ``OUT`` is refused before any work.
"""

from __future__ import annotations

import argparse
import contextlib
import os
from collections.abc import Iterable, Iterator

import numpy as np
from PIL import Image
from tqdm import tqdm

from etam_jax.errors import EtamError
from etam_jax.inference.output_dir import AtomicOutputDir, check_out_dir
from etam_jax.inference.overlay import load_rgb
from etam_jax.inference.overlay_frames import OverlayFrames


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="etam track", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="official model name, e.g. efficienttam_ti")
    p.add_argument(
        "--checkpoint",
        required=True,
        help=".pt file, etam weights dir, or etam train workdir / checkpoints/<step>",
    )
    p.add_argument("--frames", required=True, help="folder of JPEG frames named by number")
    p.add_argument("--prompts", required=True, help="PROMPTS.json")
    p.add_argument("--out", required=True, help="output folder (must not exist or be empty)")
    p.add_argument("--save-logits", action="store_true", help="also write float32 .npy logits")
    p.add_argument("--reverse", action="store_true", help="also propagate backward in time")
    p.add_argument("--overlay", action="store_true", help="also write mask overlays and a video")
    p.add_argument("--overlay-format", choices=("mp4", "gif"), default="mp4", help="video format")
    p.add_argument("--overlay-fps", type=float, default=10.0, help="overlay video frame rate")
    p.add_argument("--image-size", type=int, default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def write_frame_outputs(
    root: str, stem: str, logits_per_obj: dict[int, np.ndarray], save_logits: bool
) -> None:
    """Writes one frame's masks (``logits > 0`` as 0/255 PNG) and optional logits."""
    for obj_id, logits in logits_per_obj.items():
        folder = os.path.join(root, str(obj_id))
        os.makedirs(folder, exist_ok=True)
        mask = np.where(np.asarray(logits) > 0, 255, 0).astype(np.uint8)
        Image.fromarray(mask).save(os.path.join(folder, f"{stem}.png"))
        if save_logits:
            np.save(os.path.join(folder, f"{stem}.npy"), np.asarray(logits, np.float32))


def frame_masks(
    root: str, stem: str, logits_per_obj: dict[int, np.ndarray], obj_ids: Iterable[int]
) -> dict[int, np.ndarray]:
    """Every object's mask on one frame: the new logits > 0, and for the other objects
    the mask already written there (by the forward pass, when ``--reverse`` revisits it)."""
    masks = {o: np.asarray(lg) > 0 for o, lg in logits_per_obj.items()}
    for obj_id in obj_ids:
        path = os.path.join(root, str(obj_id), f"{stem}.png")
        if obj_id not in masks and os.path.exists(path):
            masks[obj_id] = np.asarray(Image.open(path)) > 0
    return masks


def overlay_writer(args: argparse.Namespace, root: str):
    """`OverlayFrames` into ``root/overlay`` for ``--overlay``, else a no-op context."""
    if not args.overlay:
        return contextlib.nullcontext()
    video = os.path.join(root, f"overlay.{args.overlay_format}")
    return OverlayFrames(os.path.join(root, "overlay"), video, args.overlay_fps)


def track_outputs(predictor, reverse: bool) -> Iterator[tuple[int, dict[int, np.ndarray]]]:
    """Forward propagation, then (with `reverse`) backward from each object's first prompt."""
    yield from predictor.propagate(reverse=False)
    if reverse:
        yield from predictor.propagate(reverse=True)


def count_outputs(first_frames: Iterable[int], num_frames: int, reverse: bool) -> int:
    """How many (frame) steps propagation yields, for the progress bar."""
    firsts = list(first_frames)
    backward = max(firsts) + 1 if max(firsts) > 0 else 0  # frames max(first)..0
    return (num_frames - min(firsts)) + (backward if reverse else 0)


def write_outputs(args: argparse.Namespace, predictor, total: int) -> None:
    """Propagates and writes every output into the atomic ``--out`` folder."""
    frames, stems = predictor.frames, predictor.frames.stems
    with AtomicOutputDir(args.out) as out:
        with overlay_writer(args, out.tmp) as overlays:
            outputs = track_outputs(predictor, args.reverse)
            for t, logits in tqdm(outputs, total=total, desc="etam track", unit="frame"):
                write_frame_outputs(out.tmp, stems[t], logits, args.save_logits)
                if overlays is not None:
                    masks = frame_masks(out.tmp, stems[t], logits, predictor.prompts)
                    overlays.add(t, stems[t], load_rgb(frames.path(t)), masks)
        out.commit()


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    # Cheap checks first, so bad input fails before the model is loaded.
    from etam_jax.inference.frames import VideoFrames
    from etam_jax.inference.prompts_io import group_by_object, load_prompts

    check_out_dir(args.out)
    if not os.path.exists(args.checkpoint):
        raise EtamError(f"--checkpoint {args.checkpoint}: no such file or directory")

    from etam_jax.convert.checkpoint_io import load_model
    from etam_jax.inference.video_predictor import VideoPredictor

    # the architecture a training checkpoint recorded, else the official --model
    predictor = VideoPredictor(load_model(args.model, args.checkpoint, args.image_size))
    frames = VideoFrames(args.frames, predictor.image_size)
    prompts = load_prompts(args.prompts, (frames.height, frames.width), len(frames))
    predictor.init_state(frames)
    for p in prompts:
        predictor.add_prompt(p.frame, p.obj_id, p.points, p.labels, p.box, p.mask)
    firsts = [ps[0].frame for ps in group_by_object(prompts).values()]
    total = count_outputs(firsts, len(frames), args.reverse)
    write_outputs(args, predictor, total)
    print(f"etam track: wrote {len(firsts)} object(s) x {len(frames)} frame(s) to {args.out}")
    return 0
