"""A folder of JPEG frames, listed and decoded exactly as the official predictor.

As `sam2.utils.misc.load_video_frames` / `_load_img_as_tensor`: files ending in
.jpg/.jpeg/.JPG/.JPEG, sorted by the integer value of their stem; each frame is
Pillow-decoded, `convert("RGB").resize((S, S))` (Pillow's default bicubic,
aspect ratio not kept, 8-bit result), divided by 255 in float64, cast to
float32, then normalised with the ImageNet mean/std in float32. Unlike the
official loader, frames are read lazily (a small prefetch thread) so memory
does not grow with the video.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Iterator, Sequence

import numpy as np
from PIL import Image

from etam_jax.errors import EtamError

JPEG_EXTENSIONS = (".jpg", ".jpeg", ".JPG", ".JPEG")
IMG_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMG_STD = np.array([0.229, 0.224, 0.225], np.float32)


def list_frames(frames_dir: str) -> list[str]:
    """Frame file names of a folder in official order (by integer stem).

    Raises:
        EtamError: missing folder, no JPEG in it, or a stem that is not an integer.
    """
    if not os.path.isdir(frames_dir):
        raise EtamError(f"{frames_dir}: frames folder not found")
    names = [p for p in os.listdir(frames_dir) if os.path.splitext(p)[1] in JPEG_EXTENSIONS]
    if not names:
        raise EtamError(f"{frames_dir}: no JPEG frames (*.jpg, *.jpeg) in the frames folder")
    for name in names:
        if not _is_int(os.path.splitext(name)[0]):
            raise EtamError(
                f"{os.path.join(frames_dir, name)}: frame names must be integers "
                "(e.g. 00000.jpg), as the official predictor sorts them by number"
            )
    return sorted(names, key=lambda p: int(os.path.splitext(p)[0]))


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


def load_frame(path: str, image_size: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Decodes one frame as the official predictor does.

    Args:
        path: a JPEG file.
        image_size: S, the model's input resolution.

    Returns:
        ([S, S, 3] float32 normalised image, (H, W) original size).

    Raises:
        EtamError: the file cannot be read or decoded.
    """
    try:
        with Image.open(path) as img:
            rgb = np.asarray(img.convert("RGB").resize((image_size, image_size)))
            hw = (img.height, img.width)
    except (OSError, SyntaxError, ValueError) as e:
        raise EtamError(f"{path}: cannot read JPEG frame ({e})") from None
    # As _load_img_as_tensor: /255 in float64, stored as float32, then (x - mean) / std.
    x = (rgb / 255.0).astype(np.float32)
    return (x - IMG_MEAN) / IMG_STD, hw


def read_size(path: str) -> tuple[int, int]:
    """(H, W) of an image file without decoding its pixels."""
    try:
        with Image.open(path) as img:
            return img.height, img.width
    except (OSError, SyntaxError, ValueError) as e:
        raise EtamError(f"{path}: cannot read JPEG frame ({e})") from None


class VideoFrames:
    """Lazily loaded frames of one folder.

    Attributes:
        frames_dir: the folder.
        names: file names in official order.
        image_size: S.
        height, width: original size (of frame 0; every frame must match).
    """

    def __init__(self, frames_dir: str, image_size: int):
        self.frames_dir = frames_dir
        self.names = list_frames(frames_dir)
        self.image_size = image_size
        self.height, self.width = read_size(self.path(0))

    def __len__(self) -> int:
        return len(self.names)

    @property
    def stems(self) -> list[str]:
        return [os.path.splitext(n)[0] for n in self.names]

    def path(self, index: int) -> str:
        return os.path.join(self.frames_dir, self.names[index])

    def load(self, index: int) -> np.ndarray:
        """[S, S, 3] float32 normalised frame `index`; checks its size."""
        image, hw = load_frame(self.path(index), self.image_size)
        if hw != (self.height, self.width):
            raise EtamError(
                f"{self.path(index)}: frame is {hw[1]}x{hw[0]} (WxH), but frame "
                f"{self.names[0]} is {self.width}x{self.height}; all frames must have one size"
            )
        return image

    def stream(self, order: Sequence[int], prefetch: int = 2) -> Iterator[tuple[int, np.ndarray]]:
        """Yields (index, frame) in `order`, decoding up to `prefetch` frames ahead.

        Errors in the loading thread are re-raised here, at the frame they concern.
        """
        out: queue.Queue = queue.Queue(maxsize=max(1, prefetch))
        stop = threading.Event()

        def work() -> None:
            for i in order:
                try:
                    item = (i, self.load(i), None)
                except Exception as e:  # handed to the consumer, raised there
                    item = (i, None, e)
                while not stop.is_set():
                    try:
                        out.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set() or item[2] is not None:
                    return

        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        try:
            for _ in order:
                i, image, err = out.get()
                if err is not None:
                    raise err
                yield i, image
        finally:
            stop.set()
            thread.join()
