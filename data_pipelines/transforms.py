"""SAM 2's training augmentations, applied consistently to a clip's frames and masks.

SAM 2 (``training/dataset/transforms.py`` with the ``vos.train_transforms`` of
``sam2.1_hiera_b+_MOSE_finetune.yaml``) runs, with one draw for the whole clip:
RandomHorizontalFlip, RandomAffine (rotation 25 deg, shear 20 deg, bilinear
frames, nearest masks, fill = image mean), a square resize to the model
resolution; then the colour ops of `color_jitter`. Here flip, affine and resize
are one matrix and every frame and mask is resampled once, from the decoded
image, with OpenCV (frames bilinear, masks nearest; the same matrix, so masks
stay on their objects). A frame at least twice the output size is first
box-reduced by the integer factor, as the antialiased resize SAM 2 uses would.

Randomness comes only from the ``rng`` argument (Grain's per-element rng).
"""

from __future__ import annotations

import dataclasses
import math

import cv2
import numpy as np

from data_pipelines import color_jitter

IMAGE_MEAN_FILL = (123, 116, 103)  # RandomAffine's default image_mean fill


@dataclasses.dataclass(frozen=True)
class AugmentSpec:
    """Augmentation settings; defaults are SAM 2's.

    Attributes:
        resolution: output side S (square, as RandomResizeAPI(square=True)).
        hflip_prob: probability of a horizontal flip.
        degrees: rotation drawn uniformly in ``[-degrees, degrees]``.
        shear: x-shear drawn uniformly in ``[-shear, shear]`` degrees.
        affine_tries: affine draws before giving up on the affine for this
            clip when one draw would leave an object with no pixels on the
            first frame (RandomAffine's ``num_tentatives``).
        fill: RGB of the area the affine brings in.
        clip_jitter: ``(brightness, contrast, saturation)``, one draw per clip.
        grayscale_prob: probability of a grayscale clip.
        frame_jitter: ``(brightness, contrast, saturation)``, one draw per frame.
    """

    resolution: int = 1024
    hflip_prob: float = 0.5
    degrees: float = 25.0
    shear: float = 20.0
    affine_tries: int = 1
    fill: tuple[int, int, int] = IMAGE_MEAN_FILL
    clip_jitter: tuple[float, float, float] = (0.1, 0.03, 0.03)
    grayscale_prob: float = 0.05
    frame_jitter: tuple[float, float, float] = (0.1, 0.05, 0.05)

    @classmethod
    def resize_only(cls, resolution: int) -> AugmentSpec:
        """No augmentation: only the square resize (evaluation, benchmarks)."""
        return cls(
            resolution=resolution,
            hflip_prob=0.0,
            degrees=0.0,
            shear=0.0,
            clip_jitter=(0.0, 0.0, 0.0),
            grayscale_prob=0.0,
            frame_jitter=(0.0, 0.0, 0.0),
        )


def affine_about_center(angle: float, shear_x: float, height: int, width: int) -> np.ndarray:
    """Forward map of torchvision ``F.affine(img, angle, [0, 0], 1.0, [shear_x, 0])``.

    As torchvision ``_get_inverse_affine_matrix`` (inverted): rotation by
    ``angle`` degrees (clockwise on screen, y pointing down) and x-shear about
    the image centre ``(w / 2, h / 2)``, in continuous pixel coordinates (pixel
    ``i`` covers ``[i, i + 1)``, as Pillow's transform uses).

    Returns:
        float64 ``[3, 3]`` homogeneous matrix, input -> output coordinates.
    """
    rot, sx = math.radians(angle), math.radians(shear_x)
    rss = np.array(
        [
            [math.cos(rot), -math.cos(rot) * math.tan(sx) - math.sin(rot)],
            [math.sin(rot), -math.sin(rot) * math.tan(sx) + math.cos(rot)],
        ]
    )
    center = np.array([width / 2.0, height / 2.0])
    out = np.eye(3)
    out[:2, :2] = rss
    out[:2, 2] = center - rss @ center
    return out


def geometry(
    height: int, width: int, resolution: int, flip: bool, angle: float, shear_x: float
) -> np.ndarray:
    """Flip, then affine, then square resize: one input -> output matrix ``[3, 3]``."""
    flip_m = np.array([[-1.0, 0.0, width], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]) if flip else np.eye(3)
    resize_m = np.diag([resolution / width, resolution / height, 1.0])
    return resize_m @ affine_about_center(angle, shear_x, height, width) @ flip_m


def _cv2_inverse(forward: np.ndarray, src_scale: tuple[float, float] = (1.0, 1.0)) -> np.ndarray:
    """``warpAffine(..., WARP_INVERSE_MAP)`` matrix: output pixel index -> source pixel index.

    OpenCV puts pixel centres at integers, our continuous coordinates at ``i + 0.5``.
    ``src_scale`` rescales source coordinates for a pre-reduced source.
    """
    shift = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5], [0.0, 0.0, 1.0]])
    unshift = np.array([[1.0, 0.0, -0.5], [0.0, 1.0, -0.5], [0.0, 0.0, 1.0]])
    scale = np.diag([src_scale[0], src_scale[1], 1.0])
    return (unshift @ scale @ np.linalg.inv(forward) @ shift)[:2]


def warp_frame(
    frame: np.ndarray,
    forward: np.ndarray,
    resolution: int,
    fill: tuple[int, int, int],
    out: np.ndarray,
) -> None:
    """Bilinear warp of one uint8 ``[H, W, 3]`` frame into ``out`` uint8 ``[S, S, 4]`` (RGBA).

    Warped as RGBA: OpenCV's 4-channel bilinear path is about twice as fast
    as its 3-channel one; `color_jitter.apply_colour` drops the alpha again.
    """
    h, w = frame.shape[:2]
    kx, ky = max(1, w // resolution), max(1, h // resolution)
    src_scale = (1.0, 1.0)
    if kx > 1 or ky > 1:  # box-reduce first so the bilinear warp does not alias
        small = (max(1, round(w / kx)), max(1, round(h / ky)))
        frame = cv2.resize(frame, small, interpolation=cv2.INTER_AREA)
        src_scale = (small[0] / w, small[1] / h)
    cv2.warpAffine(
        cv2.cvtColor(frame, cv2.COLOR_RGB2RGBA),
        _cv2_inverse(forward, src_scale),
        (resolution, resolution),
        dst=out,
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=(*(float(v) for v in fill), 0.0),
    )


def output_window(
    box: np.ndarray, forward: np.ndarray, resolution: int
) -> tuple[int, int, int, int] | None:
    """Output pixels ``[x0, x1) x [y0, y1)`` that a source box ``(x, y, w, h)`` can reach (``None``: none)."""
    x, y, w, h = (float(v) for v in box)
    if w <= 0 or h <= 0:
        return None
    corners = np.array([[x, y, 1.0], [x + w, y, 1.0], [x, y + h, 1.0], [x + w, y + h, 1.0]])
    pts = corners @ forward[:2].T
    x0, y0 = np.clip(np.floor(pts.min(0)) - 1, 0, resolution).astype(int)
    x1, y1 = np.clip(np.ceil(pts.max(0)) + 1, 0, resolution).astype(int)
    return (int(x0), int(y0), int(x1), int(y1)) if x1 > x0 and y1 > y0 else None


def warp_masks(
    masks: np.ndarray,
    forward: np.ndarray,
    resolution: int,
    out: np.ndarray,
    boxes: np.ndarray | None = None,
) -> None:
    """Nearest warp of bool ``[o, H, W]`` masks into ``out`` uint8 ``[>=o, S, S]`` (zeros outside).

    Args:
        masks, forward, resolution, out: as above.
        boxes: optional float ``[o, 4]`` source boxes ``(x, y, w, h)`` holding each
            mask's pixels (COCO ``bbox``); only the output window they reach is
            warped, the rest zeroed. Objects are small: this is most of the cost saved.
    """
    inverse = _cv2_inverse(forward)
    flags = cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP
    for o in range(masks.shape[0]):
        src = np.ascontiguousarray(masks[o]).view(np.uint8)
        if boxes is None:
            cv2.warpAffine(
                src,
                inverse,
                (resolution, resolution),
                dst=out[o],
                flags=flags,
                borderMode=cv2.BORDER_CONSTANT,
                borderValue=0,
            )
            continue
        out[o] = 0
        window = output_window(boxes[o], forward, resolution)
        if window is None:
            continue
        x0, y0, x1, y1 = window
        shifted = inverse.copy()  # output pixel (i, j) of the window is (x0 + i, y0 + j)
        shifted[:, 2] += inverse[:, 0] * x0 + inverse[:, 1] * y0
        out[o, y0:y1, x0:x1] = cv2.warpAffine(
            src,
            shifted,
            (x1 - x0, y1 - y0),
            flags=flags,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=0,
        )


def draw_geometry(
    masks0: np.ndarray,
    spec: AugmentSpec,
    rng: np.random.Generator,
    out0: np.ndarray,
    boxes0: np.ndarray | None = None,
) -> np.ndarray:
    """Draws flip and affine; warps the first frame's masks into ``out0``.

    As RandomAffine.__call__: an affine that leaves an object with no pixels on
    the first frame is redrawn, ``affine_tries`` times, then dropped (flip and
    resize only).

    Args:
        masks0: bool ``[o, H, W]``, the first frame's masks.
        spec: augmentation settings.
        rng: the example's generator.
        out0: uint8 ``[>=o, S, S]``, receives the warped first-frame masks.
        boxes0: optional ``[o, 4]`` boxes of ``masks0`` (see `warp_masks`).

    Returns:
        the forward matrix ``[3, 3]`` for every frame of the clip.
    """
    o, h, w = masks0.shape
    flip = bool(rng.random() < spec.hflip_prob)
    for _ in range(spec.affine_tries):
        angle = float(rng.uniform(-spec.degrees, spec.degrees))
        shear_x = float(rng.uniform(-spec.shear, spec.shear))
        forward = geometry(h, w, spec.resolution, flip, angle, shear_x)
        warp_masks(masks0, forward, spec.resolution, out0, boxes0)
        if out0[:o].reshape(o, -1).any(axis=1).all():
            return forward
    forward = geometry(h, w, spec.resolution, flip, 0.0, 0.0)
    warp_masks(masks0, forward, spec.resolution, out0, boxes0)
    return forward


def augment_clip(
    frames: np.ndarray,
    masks: np.ndarray,
    spec: AugmentSpec,
    rng: np.random.Generator,
    num_objects: int | None = None,
    boxes: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Augments a clip with one draw of flip/affine/colour for all its frames.

    Args:
        frames: uint8 ``[t, H, W, 3]``.
        masks: bool ``[t, o, H, W]``.
        spec: augmentation settings.
        rng: the example's generator (Grain's per-element rng).
        num_objects: pad the object axis to this many (empty) masks; default ``o``.
        boxes: optional float ``[t, o, 4]`` mask boxes ``(x, y, w, h)`` (speed only).

    Returns:
        frames uint8 ``[t, S, S, 3]`` and masks bool ``[t, num_objects, S, S]``.
    """
    t, o = masks.shape[:2]
    s = spec.resolution
    out_frames = np.empty((t, s, s, 3), np.uint8)
    padded = max(o, num_objects or o)
    # Padding must be zero; the warps write every pixel of the rest. (Large zeroed
    # allocations are lazily zeroed pages: cheaper than zeroing pad slices.)
    out_masks = (np.zeros if padded > o else np.empty)((t, padded, s, s), np.uint8)
    boxes = [None] * t if boxes is None else boxes
    forward = draw_geometry(masks[0], spec, rng, out_masks[0], boxes[0])
    colours = color_jitter.draw_clip_colour(
        rng, t, spec.clip_jitter, spec.grayscale_prob, spec.frame_jitter
    )
    rgba = np.empty((s, s, 4), np.uint8)
    for i in range(t):
        warp_frame(frames[i], forward, s, spec.fill, rgba)
        color_jitter.apply_colour(rgba, colours[i], out=out_frames[i])
        if i:
            warp_masks(masks[i], forward, s, out_masks[i], boxes[i])
    return out_frames, out_masks.view(bool)
