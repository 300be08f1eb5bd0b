"""The trivial VOS baseline: every object's first annotated mask, copied to every later frame.

What a tracker must beat to show that it tracks (a model that learnt only to
reproduce its prompt scores about this). ``etam eval --baseline
copy-first-mask`` scores it with the same protocol as a model.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from data_pipelines.vos_reader import VOSVideo


def predict(video: VOSVideo) -> Iterator[tuple[int, dict[int, np.ndarray]]]:
    """Yields ``(frame, {obj_id: bool [H, W]})`` for every frame, as `VOSEvaluator.predict`:
    an object is predicted from its first annotated frame on, with that frame's mask."""
    firsts = {o: video.first_frame(o) for o in video.object_ids}
    masks = {o: np.asarray(video.mask(o, t), bool) for o, t in firsts.items()}
    for t in range(len(video.frame_paths)):
        yield t, {o: masks[o] for o, first in firsts.items() if first <= t}
