"""mp4 writing and reading through PyAV (FFmpeg).

SA-V train videos are H.264 mp4 at 24 fps; we write the same (libx264,
yuv420p) and read frames back decoded to RGB. Reading stops at the last frame
asked for, so a clip near the start of a long video is cheap.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Iterable, Sequence

import av
import numpy as np

FPS = 24


class VideoReadError(Exception):
    """A video that cannot be opened or ends before the frames asked for."""


def _rgb_frame(frame: np.ndarray, index: int) -> av.VideoFrame:
    out = av.VideoFrame.from_ndarray(np.asarray(frame, np.uint8), format="rgb24")
    out.pts = index
    return out


def write_mp4(path: str | Path, frames: Iterable[np.ndarray], fps: int = FPS, crf: int = 8) -> None:
    """Writes uint8 ``[H, W, 3]`` frames (even H and W) as H.264 mp4.

    Byte-identical across runs: with x264's lookahead (``rc-lookahead`` > 0,
    macroblock-tree rate control) the bitstream varied between encodes of the
    same frames in one process, so it is off, as are threads. A low CRF keeps
    decoded frames within a few grey levels of the input.
    """
    with av.open(str(path), mode="w") as container:
        stream = None
        for index, frame in enumerate(frames):
            if stream is None:
                stream = container.add_stream("libx264", rate=Fraction(fps))
                stream.height, stream.width = frame.shape[:2]
                stream.pix_fmt = "yuv420p"
                stream.options = {"crf": str(crf), "threads": "1", "rc-lookahead": "0"}
                stream.codec_context.thread_count = 1
            container.mux(stream.encode(_rgb_frame(frame, index)))
        if stream is not None:
            container.mux(stream.encode())


def read_mp4(
    path: str | Path, indices: Sequence[int] | None = None, stride: int = 1
) -> tuple[list[np.ndarray], int]:
    """Decodes frames of an mp4.

    Args:
        path: the video.
        indices: frame numbers to keep (sorted or not); None keeps every ``stride``-th
            frame from frame 0 to the end (decoding to the end counts every frame).
        stride: with ``indices`` None, keep frames ``0, stride, 2 * stride, ...``.

    Returns:
        (frames, decoded): the kept frames as uint8 ``[H, W, 3]`` in the order of
        ``indices``, and how many frames were decoded.

    Raises:
        VideoReadError: the file cannot be decoded or has fewer frames than asked for.
    """
    wanted = None if indices is None else set(int(i) for i in indices)
    last = None if indices is None else max(wanted, default=-1)
    kept: dict[int, np.ndarray] = {}
    count = 0
    try:
        with av.open(str(path)) as container:
            for count, frame in enumerate(container.decode(video=0), start=1):
                i = count - 1
                if (i % stride == 0) if wanted is None else (i in wanted):
                    kept[i] = frame.to_ndarray(format="rgb24")
                if last is not None and i >= last:
                    break
    except (av.FFmpegError, OSError, ValueError) as e:
        raise VideoReadError(f"cannot decode {path} ({type(e).__name__}: {e})") from e
    order = sorted(kept) if indices is None else [int(i) for i in indices]
    missing = [i for i in order if i not in kept]
    if missing or (indices is None and count == 0):
        raise VideoReadError(
            f"{path}: video has {count} decodable frames, frame {missing[:1] or [0]} asked for"
        )
    return [kept[i] for i in order], count
