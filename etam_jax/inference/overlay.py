"""Mask overlays: per-object colours blended over RGB frames, written as PNGs and a video.

    rgb = overlay(frame_rgb, {1: mask_a, 2: mask_b})     # uint8 [H, W, 3]
    write_video("out.mp4", frames, fps=10)                # or .gif

Each object id always gets the same colour (``color_for``), so one object
keeps its colour across frames, videos and commands (`etam track --overlay`,
`etam eval --vis`). Inside a mask the frame is blended with the colour; the
mask's contour (mask pixels with a 4-neighbour outside it) is drawn in the
plain colour.

Videos are streamed: `VideoWriter` encodes each frame as it is written.
MP4 uses H.264 (libx264) when the PyAV wheel has it, else MPEG-4 part 2, in
yuv420p, which needs even sizes: odd frames are padded by repeating the
last row/column. GIF goes through Pillow, which keeps the palettised frames
(1 byte per pixel) until `close`; use MP4 for long videos.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

import numpy as np
from PIL import Image

from etam_jax.errors import EtamError

# Distinct, saturated colours (Tableau 10 order); object id -> PALETTE[id % 10].
PALETTE = np.array(
    [
        (31, 119, 180),
        (255, 127, 14),
        (44, 160, 44),
        (214, 39, 40),
        (148, 103, 189),
        (140, 86, 75),
        (227, 119, 194),
        (127, 127, 127),
        (188, 189, 34),
        (23, 190, 207),
    ],
    np.uint8,
)
ALPHA = 0.5  # weight of the object colour inside a mask
VIDEO_SUFFIXES = (".mp4", ".gif")
MP4_CODECS = ("libx264", "mpeg4")  # first one the PyAV wheel can encode


def color_for(obj_id: int) -> np.ndarray:
    """[3] uint8 colour of object `obj_id` (fixed: the same id always gets the same colour)."""
    return PALETTE[int(obj_id) % len(PALETTE)]


def mask_contour(mask: np.ndarray) -> np.ndarray:
    """[H, W] bool: mask pixels with a 4-neighbour outside the mask (image borders do not count)."""
    m = np.pad(mask, 1, mode="edge")
    inner = m[:-2, 1:-1] & m[2:, 1:-1] & m[1:-1, :-2] & m[1:-1, 2:]
    return mask & ~inner


def overlay(
    frame_rgb: np.ndarray,
    masks: Mapping[int, np.ndarray],
    alpha: float = ALPHA,
    contour: bool = True,
) -> np.ndarray:
    """Blends each object's mask over a frame in the object's colour.

    Objects are drawn in increasing id order, so where masks overlap the
    larger id is on top.

    Args:
        frame_rgb: [H, W, 3] uint8 frame.
        masks: obj_id -> [H, W] bool (or 0/1, 0/255) mask.
        alpha: colour weight inside a mask.
        contour: draw each mask's contour in the plain colour.

    Returns:
        [H, W, 3] uint8 frame with the overlays.

    Raises:
        EtamError: a frame that is not [H, W, 3] uint8, or a mask of another size.
    """
    frame_rgb = np.asarray(frame_rgb)
    if frame_rgb.ndim != 3 or frame_rgb.shape[-1] != 3 or frame_rgb.dtype != np.uint8:
        raise EtamError(
            f"overlay: frame must be [H, W, 3] uint8, got {frame_rgb.shape} {frame_rgb.dtype}"
        )
    out = frame_rgb.astype(np.float32)
    for obj_id in sorted(masks):
        mask = np.asarray(masks[obj_id]).astype(bool)
        if mask.shape != frame_rgb.shape[:2]:
            raise EtamError(
                f"overlay: object {obj_id}'s mask is {mask.shape}, expected the frame size "
                f"{frame_rgb.shape[:2]}"
            )
        color = color_for(obj_id).astype(np.float32)
        out[mask] = (1.0 - alpha) * out[mask] + alpha * color
        if contour:
            out[mask_contour(mask)] = color
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def load_rgb(path: str) -> np.ndarray:
    """[H, W, 3] uint8 RGB pixels of an image file."""
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"))
    except (OSError, SyntaxError, ValueError) as e:
        raise EtamError(f"{path}: cannot read image ({e})") from None


def mp4_codec() -> str:
    """The first codec of `MP4_CODECS` this PyAV build can encode."""
    import av

    for name in MP4_CODECS:
        try:
            av.codec.Codec(name, "w")
        except ValueError:  # av.codec.codec.UnknownCodecError
            continue
        return name
    raise EtamError(f"PyAV has none of the MP4 encoders {MP4_CODECS}; write a .gif instead")


def pad_even(frame: np.ndarray) -> np.ndarray:
    """Pads [H, W, 3] to even H and W by repeating the last row/column (yuv420p needs it)."""
    h, w = frame.shape[:2]
    return np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")


class VideoWriter:
    """Writes frames to an .mp4 (streamed) or .gif file, chosen by the path's suffix.

    Every frame must have the size of the first. Use as a context manager
    or call `close`.

    Args:
        path: output file ending in .mp4 or .gif.
        fps: frames per second.
    """

    def __init__(self, path: str, fps: float = 10.0):
        self.suffix = os.path.splitext(path)[1].lower()
        if self.suffix not in VIDEO_SUFFIXES:
            raise EtamError(f"{path}: video must end in one of {VIDEO_SUFFIXES}")
        if fps <= 0:
            raise EtamError(f"{path}: fps must be positive, got {fps}")
        self.path, self.fps, self.count = path, fps, 0
        self._size: tuple[int, int] | None = None
        self._container = self._stream = None
        self._gif: list[Image.Image] = []

    def write(self, frame_rgb: np.ndarray) -> None:
        """Appends one [H, W, 3] uint8 frame."""
        frame_rgb = np.asarray(frame_rgb, np.uint8)
        if self._size is None:
            self._size = frame_rgb.shape[:2]
            if self.suffix == ".mp4":
                self._open_mp4(pad_even(frame_rgb).shape[:2])
        elif frame_rgb.shape[:2] != self._size:
            raise EtamError(
                f"{self.path}: frame {self.count} is {frame_rgb.shape[:2]}, "
                f"the first was {self._size}"
            )
        if self.suffix == ".mp4":
            import av

            frame = av.VideoFrame.from_ndarray(
                np.ascontiguousarray(pad_even(frame_rgb)), format="rgb24"
            )
            for packet in self._stream.encode(frame):
                self._container.mux(packet)
        else:
            self._gif.append(Image.fromarray(frame_rgb).quantize(256))
        self.count += 1

    def _open_mp4(self, hw: tuple[int, int]) -> None:
        from fractions import Fraction

        import av

        self._container = av.open(self.path, "w")
        rate = Fraction(self.fps).limit_denominator(1001)
        self._stream = self._container.add_stream(mp4_codec(), rate=rate)
        self._stream.height, self._stream.width = hw
        self._stream.pix_fmt = "yuv420p"

    def close(self) -> None:
        """Flushes the encoder and finishes the file (a video with no frame writes no file)."""
        if self._container is not None:
            for packet in self._stream.encode():
                self._container.mux(packet)
            self._container.close()
            self._container = None
        if self._gif:
            ms = max(1, round(1000.0 / self.fps))
            self._gif[0].save(
                self.path, save_all=True, append_images=self._gif[1:], duration=ms, loop=0
            )
            self._gif = []

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_video(path: str, frames: Iterable[np.ndarray], fps: float = 10.0) -> int:
    """Writes [H, W, 3] uint8 frames to `path` (.mp4 or .gif); returns the frame count."""
    with VideoWriter(path, fps) as writer:
        for frame in frames:
            writer.write(frame)
    return writer.count
