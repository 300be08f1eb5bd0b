"""Semi-supervised VOS evaluation: run the video predictor on every video, score J&F.

    summary = evaluate("efficienttam_ti", "w.pt", "DAVIS/", out_dir="eval/")
    summary = evaluate_model(model, "DAVIS/")            # in-memory weights (training)

    evaluator = VOSEvaluator(model)                      # keeps the compiled steps
    for step ...:
        evaluator.update(state.model())                  # new weights, same architecture
        val = evaluator("DAVIS/", progress=False, max_videos=8)["J&F"]

Inference follows sam2 ``tools/vos_inference.py`` with
``--track_object_appearing_later_in_video`` (``vos_separate_inference_per_object``):
each object is prompted with its ground-truth mask on the first annotated frame
where it has pixels and tracked forward from there, independently of the
others (our predictor batches all objects of a video through one compiled
step, with the same result as separate runs); frames before an object's
prompt are empty for it. DAVIS-layout outputs go through
``_apply_non_overlapping_constraints`` (``non_overlap_masks=true`` unless
``--per_obj_png_file``): at each pixel only the object with the highest logit
may be foreground. Masks are ``logits > 0``. Scoring: `protocol`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path

import numpy as np
from flax import nnx
from tqdm import tqdm

from data_pipelines.vos_reader import VOSVideo, read_davis, read_sav_eval
from etam_jax.errors import EtamError
from etam_jax.evaluation.outputs import MaskWriter, write_scores
from etam_jax.evaluation.protocol import ObjectScore, per_video, score_video, summarize


def find_videos(
    data_dir: str | Path, split: str = "val", max_videos: int | None = None
) -> list[VOSVideo]:
    """The videos of a DAVIS-layout (``JPEGImages/<res>/``) or SA-V val/test-layout
    (``JPEGImages_24fps/``) folder; DAVIS takes ``480p`` or else its only resolution.

    Raises:
        EtamError: a missing folder, an unknown layout, no videos or no annotated object.
    """
    root = Path(data_dir)
    if not root.is_dir():
        raise EtamError(f"--data {root}: no such folder")
    if (root / "JPEGImages_24fps").is_dir():
        videos = read_sav_eval(root, split)
    elif (root / "JPEGImages").is_dir():
        videos = read_davis(root, split, _davis_resolution(root))
    else:
        raise EtamError(
            f"--data {root}: neither a DAVIS (JPEGImages/<res>/) nor an SA-V val/test "
            "(JPEGImages_24fps/) folder"
        )
    videos = videos[:max_videos] if max_videos else videos
    if not videos:
        raise EtamError(f"--data {root}: no videos (split {split!r})")
    for v in videos:
        if not v.object_ids:
            raise EtamError(f"--data {root}: video {v.name} has no annotated object")
    return videos


def _davis_resolution(root: Path) -> str:
    found = sorted(p.name for p in (root / "JPEGImages").iterdir() if p.is_dir())
    if "480p" in found:
        return "480p"
    if len(found) == 1:
        return found[0]
    raise EtamError(f"{root / 'JPEGImages'}: expected a resolution folder (480p), found {found}")


def masks_from_logits(logits: Mapping[int, np.ndarray], non_overlap: bool) -> dict[int, np.ndarray]:
    """``{obj_id: bool [H, W]}``: ``logits > 0``; with `non_overlap`, as
    ``_apply_non_overlapping_constraints``, only where the object has the largest
    logit of all (first object on ties)."""
    ids = list(logits)
    if not ids:
        return {}
    stack = np.stack([logits[o] for o in ids])
    fg = stack > 0
    if non_overlap and len(ids) > 1:
        fg &= np.argmax(stack, axis=0)[None] == np.arange(len(ids))[:, None, None]
    return dict(zip(ids, fg))


class VOSEvaluator:
    """Runs the video predictor over VOS folders and scores it; keeps its compiled
    steps (one per object count) between calls.

    Args:
        model: an EfficientTAM (any ``apply_postprocessing``; evaluation uses the
            official video predictor's setting).
    """

    def __init__(self, model: nnx.Module):
        from etam_jax.inference.video_predictor import VideoPredictor

        self.predictor = VideoPredictor(model)  # with the predictor's post-processing

    def update(self, weights: nnx.Module | nnx.State) -> None:
        """Evaluates new weights from now on, keeping the compiled steps.

        Args:
            weights: a model of the same architecture (e.g. ``TrainState.model()``)
                or an ``nnx.State`` of it, all variables or a subset (e.g. the
                ``nnx.Param`` state ``TrainState.params``).
        """
        view = self.predictor.model
        nnx.update(view, nnx.state(weights) if isinstance(weights, nnx.Module) else weights)
        self.predictor.params = nnx.state(view)

    def predict(self, video: VOSVideo) -> Iterator[tuple[int, dict[int, np.ndarray]]]:
        """Yields ``(frame, {obj_id: bool [H, W]})`` for every frame of the video."""
        p = self.predictor
        p.init_state(str(video.frame_paths[0].parent))
        firsts = {o: video.first_frame(o) for o in video.object_ids}
        for o, t in firsts.items():
            p.add_prompt(t, o, mask=video.mask(o, t))
        for t in range(min(firsts.values())):
            yield t, {}
        for t, logits in p.propagate():
            yield t, masks_from_logits(logits, non_overlap=video.indexed)

    def __call__(
        self,
        data_dir: str | Path,
        out_dir: str | Path | None = None,
        *,
        split: str = "val",
        progress: bool = True,
        max_videos: int | None = None,
        vis: int = 0,
    ) -> dict:
        """Evaluates the videos of `data_dir` (see `find_videos`).

        Args:
            data_dir: DAVIS- or SA-V-layout folder.
            out_dir: where masks, ``summary.json``, ``per_video.csv``,
                ``per_object.csv`` (and overlays) go; None writes nothing.
            split: the list file to read (``ImageSets/2017/<split>.txt`` or
                ``sav_<split>.txt``; every video folder when it is absent).
            progress: show a tqdm bar over videos.
            max_videos: evaluate only the first N videos.
            vis: write overlays of the `vis` worst videos (needs `out_dir`).

        Returns:
            ``{"J&F", "J", "F", "videos", "objects"}`` (fractions in [0, 1]).
        """
        videos = find_videos(data_dir, split, max_videos)
        return evaluate_videos(videos, self.predict, out_dir, progress=progress, vis=vis)

    def sample_overlays(self, data_dir: str | Path, frames: int = 4) -> list[np.ndarray]:
        """Predicted masks over the first video's first ``frames`` frames (RGB uint8)."""
        from etam_jax.inference.overlay import load_rgb, overlay

        video = find_videos(data_dir, max_videos=1)[0]
        images = []
        for t, masks in self.predict(video):
            images.append(overlay(load_rgb(str(video.frame_paths[t])), masks))
            if len(images) == frames:
                break
        return images


Predict = Callable[[VOSVideo], Iterable[tuple[int, Mapping[int, np.ndarray]]]]


def evaluate_videos(
    videos: list[VOSVideo],
    predict: Predict,
    out_dir: str | Path | None = None,
    *,
    progress: bool = True,
    vis: int = 0,
) -> dict:
    """Scores `predict` (a video -> ``(frame, {obj_id: bool [H, W]})`` for every
    frame) on `videos`; writes masks, score files and overlays into `out_dir`
    when given. Returns the summary (see `VOSEvaluator.__call__`)."""
    if vis and out_dir is None:
        raise EtamError("--vis needs an output folder (--out)")
    scores: list[ObjectScore] = []
    bar = tqdm(videos, desc="etam eval", unit="video", disable=not progress)
    for video in bar:
        frames = predict(video)
        if out_dir is not None:
            frames = _tee(frames, MaskWriter(out_dir, video).write)
        scores += score_video(video, frames)
        bar.set_postfix({"J&F": f"{summarize(scores, 0)['J&F']:.3f}"})
    summary, rows = summarize(scores, len(videos)), per_video(scores)
    if out_dir is not None:
        write_scores(out_dir, summary, rows, scores)
        if vis:
            from etam_jax.evaluation.vis import write_vis

            write_vis(out_dir, videos, rows, vis)
    return summary


def _tee(frames: Iterable, consume: Callable) -> Iterator:
    """Passes `frames` through, handing each ``(frame, masks)`` to `consume` first."""
    for t, masks in frames:
        consume(t, masks)
        yield t, masks


def evaluate_model(
    model: nnx.Module, data_dir: str | Path, out_dir: str | Path | None = None, **kwargs
) -> dict:
    """One evaluation of an in-memory model (see `VOSEvaluator.__call__` for the options)."""
    return VOSEvaluator(model)(data_dir, out_dir, **kwargs)


def evaluate(
    model_name: str,
    checkpoint: str | Path,
    data_dir: str | Path,
    out_dir: str | Path | None = None,
    image_size: int | None = None,
    **kwargs,
) -> dict:
    """Evaluates the named model with weights from a ``.pt`` file or an etam Orbax
    directory (see `VOSEvaluator.__call__` for the options)."""
    from etam_jax.convert.checkpoint_io import load_model

    model = load_model(model_name, checkpoint, image_size, apply_postprocessing=True)
    return evaluate_model(model, data_dir, out_dir, **kwargs)
