"""A folder of overlay PNGs plus a video of them in frame order, written as frames arrive.

    with OverlayFrames("out/overlay", "out/overlay.mp4", fps=10) as ov:
        for t, masks in results:                        # masks: {obj_id: [H, W] bool}
            ov.add(t, stems[t], load_rgb(paths[t]), masks)

Frames arriving in increasing index order go straight into the video
(streamed, nothing kept). A frame that arrives again or before an earlier
one (``etam track --reverse`` runs a second, backward pass) rewrites its
PNG, and `close` re-encodes the video from the PNGs in frame order, one
frame in memory at a time.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np
from PIL import Image

from etam_jax.inference.overlay import VideoWriter, load_rgb, overlay


class OverlayFrames:
    """Writes ``folder/<stem>.png`` per frame and the video ``video_path`` (.mp4 or .gif).

    Args:
        folder: where the overlay PNGs go (created).
        video_path: the video, or None for PNGs only.
        fps: video frame rate.
    """

    def __init__(self, folder: str, video_path: str | None, fps: float = 10.0):
        os.makedirs(folder, exist_ok=True)
        self.folder, self.video_path, self.fps = folder, video_path, fps
        self.stems: dict[int, str] = {}  # frame index -> stem, of every frame written
        self._video = VideoWriter(video_path, fps) if video_path else None
        self._in_order, self._last = True, None

    def add(
        self, index: int, stem: str, frame_rgb: np.ndarray, masks: Mapping[int, np.ndarray]
    ) -> np.ndarray:
        """Overlays `masks` on frame `index` and writes it; returns the [H, W, 3] overlay."""
        rgb = overlay(frame_rgb, masks)
        Image.fromarray(rgb).save(self.png(stem))
        self._in_order &= self._last is None or index > self._last
        self.stems[index], self._last = stem, index
        if self._video is not None and self._in_order:
            self._video.write(rgb)
        return rgb

    def png(self, stem: str) -> str:
        return os.path.join(self.folder, f"{stem}.png")

    def close(self, rebuild: bool = True) -> None:
        """Finishes the video; re-encodes it from the PNGs if frames came out of order
        (unless `rebuild` is false: on an error, only the file is closed)."""
        if self._video is None:
            return
        self._video.close()
        self._video = None
        if rebuild and not self._in_order:
            with VideoWriter(self.video_path, self.fps) as video:  # replaces the partial file
                for index in sorted(self.stems):
                    video.write(load_rgb(self.png(self.stems[index])))

    def __enter__(self) -> OverlayFrames:
        return self

    def __exit__(self, *exc) -> None:
        self.close(rebuild=exc[0] is None)
