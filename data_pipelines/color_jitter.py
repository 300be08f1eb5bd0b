"""SAM 2's colour augmentations as one 3x4 colour matrix per frame.

SAM 2 (``training/dataset/transforms.py``: ``ColorJitter``, ``RandomGrayscale``)
applies torchvision's ``adjust_brightness / adjust_contrast /
adjust_saturation`` (Pillow ``ImageEnhance``) and ``Grayscale`` one after the
other. Each of them is affine in RGB (contrast blends towards the mean grey of
the *current* image, which is affine in the input's channel means), so the
whole chain folds into one affine map applied once with ``cv2.transform``.
The only difference: Pillow rounds and clips to uint8 after every step, we
clip once at the end (they differ only where a middle step saturates).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

# ITU-R 601-2 luma, as Pillow's convert("L") (hence torchvision's grayscale).
LUMA = np.array([0.299, 0.587, 0.114])
JITTER_KINDS = ("brightness", "contrast", "saturation")

JitterOps = list[tuple[str, float]]


def draw_jitter(rng: np.random.Generator, strengths: Sequence[float]) -> JitterOps:
    """Draws one ColorJitter: factors in ``[max(0, 1 - s), 1 + s]`` in a random order.

    As torchvision ``ColorJitter.get_params`` (SAM 2 configs have no hue jitter).

    Args:
        rng: the example's generator.
        strengths: ``(brightness, contrast, saturation)`` strengths; 0 disables one.

    Returns:
        ``[(kind, factor), ...]`` in the order to apply them.
    """
    ops = []
    for k in rng.permutation(len(JITTER_KINDS)):
        s = float(strengths[k])
        if s > 0:
            ops.append((JITTER_KINDS[k], float(rng.uniform(max(0.0, 1.0 - s), 1.0 + s))))
    return ops


def _gray_matrix() -> np.ndarray:
    return np.tile(LUMA, (3, 1))


def compose(ops: Sequence[tuple[str, float]], mean_rgb: np.ndarray) -> np.ndarray:
    """Folds colour ops into one affine map.

    Args:
        ops: ``(kind, factor)`` with kind in ``JITTER_KINDS`` or ``"grayscale"``
            (factor ignored), applied in order.
        mean_rgb: float ``[3]`` channel means of the image the ops start from.

    Returns:
        float32 ``[3, 4]``: ``out = m[:, :3] @ rgb + m[:, 3]``.
    """
    a, b = np.eye(3), np.zeros(3)
    for kind, f in ops:
        if kind == "brightness":  # ImageEnhance.Brightness: blend with black
            a, b = f * a, f * b
        elif kind == "contrast":  # ImageEnhance.Contrast: blend with the mean grey
            gray_mean = LUMA @ (a @ mean_rgb + b)
            a, b = f * a, f * b + (1.0 - f) * gray_mean
        elif kind == "saturation":  # ImageEnhance.Color: blend with the grey image
            mix = f * np.eye(3) + (1.0 - f) * _gray_matrix()
            a, b = mix @ a, mix @ b
        elif kind == "grayscale":
            a, b = _gray_matrix() @ a, _gray_matrix() @ b
        else:
            raise ValueError(f"unknown colour op {kind!r}")
    return np.concatenate([a, b[:, None]], axis=1).astype(np.float32)


def draw_clip_colour(
    rng: np.random.Generator,
    num_frames: int,
    clip_strengths: Sequence[float],
    grayscale_prob: float,
    frame_strengths: Sequence[float],
) -> list[JitterOps]:
    """Draws the colour ops of every frame of a clip, in SAM 2's order.

    ColorJitter (one draw for the clip), RandomGrayscale (one draw for the
    clip), ColorJitter (a new draw per frame), as the ``vos.train_transforms``
    of sam2.1_hiera_b+_MOSE_finetune.yaml.

    Returns:
        per frame, the ops to give `compose`.
    """
    shared = draw_jitter(rng, clip_strengths)
    if rng.random() < grayscale_prob:
        shared = shared + [("grayscale", 1.0)]
    return [shared + draw_jitter(rng, frame_strengths) for _ in range(num_frames)]


def apply_colour(
    frame: np.ndarray, ops: Sequence[tuple[str, float]], out: np.ndarray | None = None
) -> np.ndarray:
    """Applies colour ops to a frame.

    Args:
        frame: uint8 ``[H, W, 3]`` RGB or ``[H, W, 4]`` RGBA (alpha ignored), C-contiguous.
        ops: as for `compose`.
        out: uint8 ``[H, W, 3]`` to write into; default ``frame`` itself (RGB only).

    Returns:
        the RGB result (``out``).
    """
    if frame.shape[-1] == 4:  # cv2.transform on 4 channels is ~20x slower: drop alpha first
        frame = cv2.cvtColor(frame, cv2.COLOR_RGBA2RGB, dst=out)
    elif out is not None and out is not frame:
        out[...] = frame
        frame = out
    if ops:
        matrix = compose(ops, np.asarray(cv2.mean(frame)[:3]))
        cv2.transform(frame, matrix, dst=frame)
    return frame
