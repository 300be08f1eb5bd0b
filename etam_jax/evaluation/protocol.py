"""Which frames and objects the semi-supervised VOS benchmarks score, and how they average.

Two protocols, chosen by the layout (``VOSVideo.indexed``):

- DAVIS 2017 (davis2017-evaluation ``DAVISEvaluation.evaluate``, task
  semi-supervised): every annotated frame of the sequence except the first and
  the last (``all_gt_masks[:, 1:-1]``); every object on every such frame,
  an empty prediction against an empty ground truth scoring 1. Per object the
  mean over frames (``db_statistics`` M).
- SA-V val/test (sam2 ``sav_dataset/utils/sav_benchmark.py``,
  ``VideoEvaluator(skip_first_and_last=True)``): per object its own annotated
  (6 fps) frames except the first and the last; the ``Evaluator`` only starts
  scoring an object on the first of those frames where the ground truth or the
  prediction has pixels, and only reports objects whose ground truth has pixels
  on some scored frame.

Both: J&F of the whole set is (mean J + mean F) / 2 with J and F averaged over
all objects of all videos (not over videos). Scores here are fractions in
[0, 1]; the SA-V tool prints them times 100.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping

import numpy as np

from data_pipelines.vos_reader import VOSVideo
from etam_jax.evaluation.metrics import boundary_f, j_and_f, region_similarity


@dataclasses.dataclass(frozen=True)
class FrameScore:
    """One object on one scored frame."""

    frame: int
    j: float
    f: float
    gt_any: bool
    pred_any: bool


@dataclasses.dataclass(frozen=True)
class ObjectScore:
    """One object's mean J and F over its scored frames."""

    video: str
    obj_id: int
    j: float
    f: float
    frames: int

    @property
    def jf(self) -> float:
        return j_and_f(self.j, self.f)


def protocol_name(video: VOSVideo) -> str:
    """``"davis"`` for palette-PNG (indexed) annotations, ``"sav"`` for per-object folders."""
    return "davis" if video.indexed else "sav"


def scored_frames(video: VOSVideo, obj_id: int) -> list[int]:
    """Frames scored for one object: its annotated frames (DAVIS: the sequence's)
    without the first and the last."""
    frames = video.annotated_frames if video.indexed else sorted(video.mask_paths[obj_id])
    return frames[1:-1]


def score_frame(frame: int, gt: np.ndarray, pred: np.ndarray) -> FrameScore:
    """J and F of one object on one frame, with whether each side has pixels."""
    return FrameScore(
        frame,
        region_similarity(gt, pred),
        boundary_f(gt, pred),
        bool(np.any(gt)),
        bool(np.any(pred)),
    )


def object_score(video: VOSVideo, obj_id: int, frames: Iterable[FrameScore]) -> ObjectScore | None:
    """Mean J and F of one object under the video's protocol; None when the
    protocol does not report it (see the module docstring)."""
    frames = sorted(frames, key=lambda s: s.frame)
    if not video.indexed:  # SA-V: start at the first frame where either side has pixels
        start = next((i for i, s in enumerate(frames) if s.gt_any or s.pred_any), len(frames))
        frames = frames[start:]
        if not any(s.gt_any for s in frames):
            return None
    if not frames:
        return None
    return ObjectScore(
        video.name,
        obj_id,
        float(np.mean([s.j for s in frames])),
        float(np.mean([s.f for s in frames])),
        len(frames),
    )


def score_video(
    video: VOSVideo, masks_per_frame: Iterable[tuple[int, Mapping[int, np.ndarray]]]
) -> list[ObjectScore]:
    """Scores a video's predictions.

    Args:
        video: the ground truth.
        masks_per_frame: ``(frame, {obj_id: bool [H, W]})`` for every frame; an
            object missing from a frame's dict is an empty prediction.

    Returns:
        The reported objects' scores, in ``video.object_ids`` order.
    """
    wanted = {o: set(scored_frames(video, o)) for o in video.object_ids}
    per_object: dict[int, list[FrameScore]] = {o: [] for o in video.object_ids}
    for t, masks in masks_per_frame:
        for o in video.object_ids:
            if t in wanted[o]:
                gt = video.mask(o, t)
                pred = masks.get(o)
                per_object[o].append(
                    score_frame(t, gt, np.zeros_like(gt) if pred is None else pred)
                )
    scores = (object_score(video, o, per_object[o]) for o in video.object_ids)
    return [s for s in scores if s is not None]


def _means(scores: list[ObjectScore]) -> dict:
    """J, F and J&F averaged over objects (NaN for none)."""
    j = float(np.mean([s.j for s in scores])) if scores else float("nan")
    f = float(np.mean([s.f for s in scores])) if scores else float("nan")
    return {"J&F": j_and_f(j, f), "J": j, "F": f}


def summarize(scores: list[ObjectScore], num_videos: int) -> dict:
    """``{"J&F", "J", "F", "videos", "objects"}``: the toolkits' global means over all objects."""
    return {**_means(scores), "videos": num_videos, "objects": len(scores)}


def per_video(scores: list[ObjectScore]) -> list[dict]:
    """One row per video (first-seen order): ``video``, ``objects``, ``J&F``, ``J``, ``F``
    (means over the video's reported objects)."""
    names = list(dict.fromkeys(s.video for s in scores))
    rows = []
    for name in names:
        mine = [s for s in scores if s.video == name]
        rows.append({"video": name, "objects": len(mine), **_means(mine)})
    return rows
