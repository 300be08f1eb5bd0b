"""`etam data inspect`: draws examples (frames with mask overlays) to PNG files.

Each example becomes one PNG: its frames side by side (at most ``max_frames``),
every object in its own palette colour, blended at 50% with a solid outline.
Either the decoded records as stored, or (``pipeline=``) what the training
pipeline makes of them: the sampled clip and objects after augmentation and
the square resize (`examples.make_example`), i.e. what the model is fed.
Evaluation layouts (DAVIS, SA-V val/test) are drawn on their annotated frames.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
from PIL import Image

from data_pipelines.clip_sampling import SamplingSpec
from data_pipelines.examples import make_example
from data_pipelines.records import Record, SkippedExample, decode_record
from data_pipelines.sources import open_source
from data_pipelines.synthetic import davis_palette
from data_pipelines.transforms import AugmentSpec
from data_pipelines.vos_reader import VOSVideo, read_vos

log = logging.getLogger(__name__)


def object_colors(num_objects: int) -> np.ndarray:
    """uint8 ``[O, 3]`` distinct colours (DAVIS palette entries 1..O, cycled)."""
    palette = np.asarray(davis_palette(), np.uint8).reshape(256, 3)
    return palette[1 + np.arange(num_objects) % 255]


def _outline(mask: np.ndarray) -> np.ndarray:
    padded = np.pad(mask, 1)
    interior = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return mask & ~interior


def overlay(frame: np.ndarray, masks: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Draws masks over a frame.

    Args:
        frame: uint8 ``[H, W, 3]``.
        masks: bool ``[O, H, W]``.
        alpha: blend weight of the mask colour.

    Returns:
        uint8 ``[H, W, 3]``.
    """
    out = frame.astype(np.float32)
    for mask, color in zip(masks, object_colors(len(masks)).astype(np.float32)):
        out[mask] = (1 - alpha) * out[mask] + alpha * color
        out[_outline(mask)] = color
    return out.round().astype(np.uint8)


def draw_clip(frames: np.ndarray, masks: np.ndarray, max_frames: int = 8) -> np.ndarray:
    """Frames ``[T, H, W, 3]`` with masks ``[T, O, H, W]`` -> one uint8 strip ``[H, t*W, 3]``."""
    step = max(1, -(-len(frames) // max_frames))
    tiles = [overlay(f, m) for f, m in zip(frames[::step], masks[::step])]
    return np.concatenate(tiles, axis=1)


def _example(
    record: Record, pipeline: tuple[SamplingSpec, AugmentSpec] | None, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """(frames, masks) to draw: the decoded record, or the pipeline's example of it."""
    if pipeline is None:
        decoded = decode_record(record)
        return decoded["frames"], decoded["masks"]
    sampling, augment = pipeline
    if record.get("source") == "sa1b":  # images are 1-frame clips
        sampling = SamplingSpec(1, sampling.max_objects)
    example = make_example(record, sampling, augment, rng)
    return example["frames"], example["masks"]


def _vos_clip(video: VOSVideo, max_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """(frames, masks) of a VOS video's annotated frames, at most ``max_frames`` evenly spaced."""
    annotated = video.annotated_frames
    chosen = annotated[:: max(1, -(-len(annotated) // max_frames))]
    frames = np.stack([np.asarray(Image.open(video.frame_paths[t]).convert("RGB")) for t in chosen])
    masks = np.zeros((len(chosen), len(video.object_ids)) + frames.shape[1:3], bool)
    for i, t in enumerate(chosen):
        for j, obj in enumerate(video.object_ids):
            if t in video.mask_paths[obj]:
                masks[i, j] = video.mask(obj, t)
    return frames, masks


def inspect_vos(
    root: str | Path, out_dir: str | Path, num: int = 4, max_frames: int = 8
) -> list[Path]:
    """Draws the first ``num`` videos of a DAVIS or SA-V val/test folder; returns the PNGs."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for video in read_vos(root)[:num]:
        path = out / f"vos_{video.name}.png"
        Image.fromarray(draw_clip(*_vos_clip(video, max_frames), max_frames)).save(path)
        written.append(path)
    return written


def is_vos_layout(path: str | Path) -> bool:
    """Whether ``path`` is a DAVIS (``JPEGImages/``) or SA-V val/test (``JPEGImages_24fps/``) folder."""
    return (Path(path) / "JPEGImages").is_dir() or (Path(path) / "JPEGImages_24fps").is_dir()


def inspect_source(
    source_path: str | Path,
    out_dir: str | Path,
    num: int = 4,
    seed: int = 0,
    max_frames: int = 8,
    pipeline: tuple[SamplingSpec, AugmentSpec] | None = None,
) -> list[Path]:
    """Draws ``num`` examples picked at random (by ``seed``) from a record source.

    Args:
        source_path: raw SA-1B / SA-V folder or prepared dataset (`sources.open_source`).
        out_dir: where the PNGs go (``<source>_<id>.png``).
        num: examples to draw (bad records are skipped and logged).
        seed: picks the examples and the augmentation draws.
        max_frames: frames per strip (evenly subsampled).
        pipeline: ``(sampling, augment)`` to draw training examples instead of records.

    Returns:
        the PNG paths.
    """
    source = open_source(source_path)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    written = []
    for index in rng.permutation(len(source)):
        if len(written) >= num:
            break
        record = source[int(index)]
        try:
            frames, masks = _example(record, pipeline, rng)
        except SkippedExample as e:
            log.warning("inspect: skipped %s (%s)", e.file, e.reason)
            continue
        path = out / f"{record['source']}_{record['id']}.png"
        Image.fromarray(draw_clip(frames, masks, max_frames)).save(path)
        written.append(path)
    return written
