"""Procedural scenes: textured objects that move and deform over a textured background.

`Scene.render(t)` gives frame ``t`` and the *visible* (modal) mask of every
object, as SA-1B / SA-V annotate them: objects drawn later occlude earlier
ones. Everything is a closed-form function of ``(seed, t)``, so any frame can
be rendered alone and the same seed always gives the same pixels.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageDraw


@dataclasses.dataclass(frozen=True)
class SceneObject:
    """One object's shape, texture and motion (all in pixels / frames)."""

    radii: np.ndarray  # [V] base radius per vertex (ellipse-like or irregular polygon)
    center: np.ndarray  # [2] (x, y) at t = 0
    velocity: np.ndarray  # [2] pixels per frame
    angle: float  # rotation at t = 0 (radians)
    spin: float  # radians per frame
    wobble: np.ndarray  # [V] phase of each vertex's deformation
    colors: np.ndarray  # [2, 3] uint8 stripe colours
    stripe_dir: float  # stripe direction (radians)
    stripe_period: float  # pixels
    appear: int  # first frame the object is in the scene


def _reflect(x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Bounces ``x`` between ``lo`` and ``hi`` (a triangle wave), closed form in t."""
    span = np.maximum(hi - lo, 1e-6)
    y = np.mod(x - lo, 2 * span)
    return lo + np.where(y > span, 2 * span - y, y)


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Smooth colour field plus fine grain noise: uint8 ``[H, W, 3]``."""
    coarse = rng.integers(30, 225, size=(4, 5, 3), dtype=np.uint8)
    smooth = np.asarray(Image.fromarray(coarse).resize((width, height), Image.BICUBIC), np.float32)
    grain = rng.normal(0.0, 12.0, size=(height, width, 1)).astype(np.float32)
    return np.clip(smooth + grain, 0, 255).astype(np.uint8)


class SceneStyle(NamedTuple):
    """How a dataset's objects look and move; the same seed draws the same objects in any style.

    Attributes:
        object_scale: multiplies every object's size (radius 10-22% of the
            shorter side at 1).
        motion: multiplies every object's speed (up to 3% of the shorter side
            per frame along each axis at 1; no effect on images).
    """

    object_scale: float = 1.0
    motion: float = 1.0


def _random_object(
    rng: np.random.Generator,
    height: int,
    width: int,
    num_frames: int,
    late: bool,
    style: SceneStyle,
) -> SceneObject:
    size = min(height, width)
    base = rng.uniform(0.10, 0.22) * size * style.object_scale
    if rng.random() < 0.5:  # ellipse: 32 vertices on an ellipse
        theta = np.linspace(0, 2 * np.pi, 32, endpoint=False)
        aspect = rng.uniform(0.5, 1.0)
        radii = base / np.sqrt(np.cos(theta) ** 2 + (np.sin(theta) / aspect) ** 2)
    else:  # irregular polygon
        radii = base * rng.uniform(0.6, 1.2, size=int(rng.integers(5, 9)))
    margin = min(radii.max(), 0.45 * size)  # large objects may leave the frame a little
    center = np.array([rng.uniform(margin, width - margin), rng.uniform(margin, height - margin)])
    return SceneObject(
        radii=radii,
        center=center,
        velocity=rng.uniform(-0.03, 0.03, size=2) * size * style.motion,
        angle=rng.uniform(0, 2 * np.pi),
        spin=rng.uniform(-0.05, 0.05),
        wobble=rng.uniform(0, 2 * np.pi, size=radii.size),
        colors=rng.integers(0, 256, size=(2, 3), dtype=np.uint8),
        stripe_dir=rng.uniform(0, np.pi),
        stripe_period=rng.uniform(4, 12),
        appear=int(rng.integers(1, max(2, num_frames // 2))) if late else 0,
    )


class Scene:
    """A deterministic synthetic scene.

    Args:
        seed: random seed; equal seeds give equal scenes.
        height, width: frame size in pixels.
        num_objects: objects drawn (some may end up fully hidden; callers drop them).
        num_frames: length of the video the scene is rendered for (1 for an image).
        late_object: whether the last object enters after frame 0 (SA-V
            ``masklet_first_appeared_frame`` > 0).
        style: object size and speed factors (`SceneStyle`).
    """

    def __init__(
        self,
        seed: int,
        height: int,
        width: int,
        num_objects: int,
        num_frames: int = 1,
        late_object: bool = False,
        style: SceneStyle = SceneStyle(),
    ):
        rng = np.random.default_rng(seed)
        self.height, self.width = height, width
        self.background = _background(rng, height, width)
        self.objects = [
            _random_object(
                rng,
                height,
                width,
                num_frames,
                late_object and k == num_objects - 1,
                style,
            )
            for k in range(num_objects)
        ]

    def texture(self, k: int, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
        """uint8 ``[N, 3]`` colour of object ``k``'s stripes at pixels ``(ys, xs)`` (fixed in the image)."""
        obj = self.objects[k]
        phase = xs * np.cos(obj.stripe_dir) + ys * np.sin(obj.stripe_dir)
        stripe = (np.sin(2 * np.pi * phase / obj.stripe_period) > 0)[:, None]
        return np.where(stripe, obj.colors[0], obj.colors[1]).astype(np.uint8)

    def polygon(self, k: int, t: int) -> np.ndarray:
        """Vertices ``[V, 2]`` (x, y) of object ``k`` at frame ``t``."""
        obj = self.objects[k]
        margin = obj.radii.max() * 0.8
        lo, hi = np.array([margin, margin]), np.array([self.width - margin, self.height - margin])
        center = _reflect(obj.center + obj.velocity * t, lo, hi)
        theta = np.linspace(0, 2 * np.pi, obj.radii.size, endpoint=False) + obj.angle + obj.spin * t
        radii = obj.radii * (1.0 + 0.15 * np.sin(0.3 * t + obj.wobble))
        return center + radii[:, None] * np.stack([np.cos(theta), np.sin(theta)], -1)

    def render(self, t: int) -> tuple[np.ndarray, np.ndarray]:
        """Frame ``t``.

        Returns:
            frame: uint8 ``[H, W, 3]``.
            masks: bool ``[K, H, W]``, the visible part of each object (empty
                before the object appears).
        """
        frame = self.background.copy()
        owner = np.full((self.height, self.width), -1, np.int32)  # topmost object per pixel
        for k, obj in enumerate(self.objects):
            if t < obj.appear:
                continue
            canvas = Image.new("L", (self.width, self.height), 0)
            ImageDraw.Draw(canvas).polygon([tuple(p) for p in self.polygon(k, t)], fill=1)
            ys, xs = np.nonzero(np.asarray(canvas))
            frame[ys, xs] = self.texture(k, ys, xs)
            owner[ys, xs] = k  # later objects occlude earlier ones
        masks = owner[None] == np.arange(len(self.objects))[:, None, None]
        return frame, masks
