"""The video predictor: prompts on any frame, objects tracked independently and batched.

Semantics (SAM 2.1-style, DESIGN.md `etam track`): each object's logits equal
the official predictor (``sam2_video_predictor.SAM2VideoPredictor``) run on
that object alone: its prompts are added first (every prompted frame of it
becomes a conditioning frame, computed without memory), then
``propagate_in_video`` from its first prompted frame; ``reverse=True``
continues backward from there (after a forward pass it reads the forward
pass's memories, as the official session does). Objects share one batched,
once-compiled step per frame (``models/tracker.py``); frames are streamed
from disk and only the memory bank, the conditioning outputs (low-res
logits) and a snapshot of the bank for the reverse pass are kept.

    predictor = VideoPredictor(load_video_model("efficienttam_ti", "w.pt"))
    predictor.init_state("frames/")
    predictor.add_prompt(0, obj_id=1, points=[[x, y]], labels=[1])
    for frame_idx, logits in predictor.propagate():   # {obj_id: [H, W] float32}
        ...
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from etam_jax.errors import EtamError
from etam_jax.inference.frames import VideoFrames
from etam_jax.models import prompt_labels
from etam_jax.models.resize import resize_bilinear
from etam_jax.models.tracker import Tracker


def with_postprocessing(model: nnx.Module) -> nnx.Module:
    """A view of `model` set up as the official video predictor builder does
    (``apply_postprocessing``: dynamic multimask fallback): its own variables
    (so updating it leaves `model` alone) holding the same arrays (no copy)."""
    graphdef, state = nnx.split(model)
    view = nnx.merge(graphdef, jax.tree.map(lambda x: x, state))
    view.sam_mask_decoder.dynamic_multimask_via_stability = True
    return view


def load_video_model(
    name: str | None, checkpoint: str, image_size: int | None = None
) -> nnx.Module:
    """The model with weights from any checkpoint (`convert.checkpoint_io.load_model`),
    set up as the official video predictor builder does (``apply_postprocessing``)."""
    from etam_jax.convert.checkpoint_io import load_model

    return load_model(name, checkpoint, image_size, apply_postprocessing=True)


@jax.jit
def _take_where(rows, bank, other):
    """`bank`'s objects where `rows` [B] is true, `other`'s elsewhere."""
    pick = lambda x, y: jnp.where(rows.reshape((-1,) + (1,) * (x.ndim - 1)), x, y)  # noqa: E731
    return jax.tree.map(pick, bank, other)


@dataclasses.dataclass
class _FramePrompt:
    points: np.ndarray | None  # [N, 2] original pixels
    labels: np.ndarray | None  # [N]
    box: np.ndarray | None  # [4]
    mask: np.ndarray | None  # [H, W] bool


class VideoPredictor:
    """Tracks prompted objects through a folder of frames (see the module docstring).

    The official builder (``build_sam2_video_predictor``) always applies the
    mask decoder's post-processing (an unstable single mask falls back to the
    best multimask output); so does this class, whatever `model` was built with,
    so a single-mask prompt (several clicks, a box) cannot silently differ.

    Args:
        model: an EfficientTAM with weights (any ``apply_postprocessing``).
        prefetch: frames decoded ahead of the model.
    """

    def __init__(self, model: nnx.Module, prefetch: int = 2):
        self.model = with_postprocessing(model)
        self.params = nnx.state(self.model)
        self.image_size = model.image_size
        self.prefetch = prefetch
        self.frames: VideoFrames | None = None
        self.prompts: dict[int, dict[int, _FramePrompt]] = {}
        self._trackers: dict[tuple[int, int], Tracker] = {}
        self._snapshot = None  # bank for the reverse pass, from the last forward pass
        self._to_video = None

    def init_state(self, frames: str | VideoFrames) -> None:
        """Opens a folder of JPEG frames (nothing is decoded yet) and clears all prompts."""
        self.frames = (
            frames if isinstance(frames, VideoFrames) else VideoFrames(frames, self.image_size)
        )
        self.prompts, self._snapshot = {}, None
        size = (self.frames.height, self.frames.width)
        # As _get_orig_video_res_output: plain bilinear low-res -> original size.
        if self._to_video is None or self._to_video[0] != size:
            self._to_video = (size, jax.jit(lambda x: resize_bilinear(x[:, 0], size)))

    def add_prompt(
        self, frame: int, obj_id: int, points=None, labels=None, box=None, mask=None
    ) -> None:
        """Sets object `obj_id`'s prompt on `frame` (replacing an earlier one there).

        Args:
            frame: frame index (into the sorted frame list).
            obj_id: any integer id.
            points: [N, 2] (x, y) clicks in original pixels, with `labels` [N] (1 / 0).
            box: [4] (x0, y0, x1, y1) in original pixels.
            mask: [H, W] boolean mask at the original size.
        """
        if self.frames is None:
            raise EtamError("call init_state(frames_dir) before add_prompt")
        if not 0 <= frame < len(self.frames):
            raise EtamError(
                f"object {obj_id}: frame {frame} does not exist (0..{len(self.frames) - 1})"
            )
        if points is None and box is None and mask is None:
            raise EtamError(f"object {obj_id} on frame {frame}: no prompt (points, box or mask)")
        if (points is None) != (labels is None):
            raise EtamError(f"object {obj_id} on frame {frame}: points and labels go together")
        as_f32 = lambda a: None if a is None else np.asarray(a, np.float32)  # noqa: E731
        lab = None if labels is None else np.asarray(labels, np.int32)
        msk = None if mask is None else np.asarray(mask, bool)
        self.prompts.setdefault(obj_id, {})[frame] = _FramePrompt(
            as_f32(points), lab, as_f32(box), msk
        )
        self._snapshot = None

    def propagate(self, reverse: bool = False) -> Iterator[tuple[int, dict[int, np.ndarray]]]:
        """Yields ``(frame_idx, {obj_id: [H, W] float32 logits})`` frame by frame.

        Forward: from the first prompted frame to the end; an object appears
        from its own first prompted frame. Reverse: from each object's first
        prompted frame back to frame 0 (nothing for objects starting at 0).
        """
        if not self.prompts:
            raise EtamError("no prompts: add_prompt before propagate")
        obj_ids = list(self.prompts)
        firsts = np.array([min(self.prompts[o]) for o in obj_ids])
        bank, cond = self._preflight(obj_ids)
        if reverse:
            bank = self._snapshot if self._snapshot is not None else bank
            order = range(int(firsts.max()), -1, -1)
            shows = lambda t: (t <= firsts) & (firsts > 0)  # noqa: E731
        else:
            order = range(int(firsts.min()), len(self.frames))
            shows = lambda t: t >= firsts  # noqa: E731
        yield from self._run(obj_ids, firsts, bank, cond, order, shows, reverse)

    def _tracker(self, num_objects: int) -> Tracker:
        """The tracker for B objects, with as many conditioning slots as any object has
        prompted frames (empty slots are attended, masked, so they would cost time)."""
        num_cond = max(len(frames) for frames in self.prompts.values())
        key = (num_objects, num_cond)
        if key not in self._trackers:
            self._trackers[key] = Tracker(
                self.model, num_objects=num_objects, num_cond_slots=num_cond
            )
        return self._trackers[key]

    def _run(self, obj_ids, firsts, bank, cond, order, shows, reverse):
        """The propagation loop shared by both directions."""
        tracker, num = self._tracker(len(obj_ids)), len(self.frames)
        snap_at = np.minimum(firsts + tracker.num_recent - 1, num - 1)
        snapshot = bank
        cond_at = lambda t: np.array([t in cond[b] for b in range(len(obj_ids))])  # noqa: E731
        # Frames where every shown object has a stored (conditioning) output need no image.
        needs = [t for t in order if np.any(shows(t) & ~cond_at(t))]
        images = self.frames.stream(needs, self.prefetch)
        low = self.model.sam_prompt_encoder.mask_input_size  # the low-res mask size, 4 g
        for t in order:
            show, here = shows(t), cond_at(t)
            active = show & ~here
            logits = jnp.zeros((len(obj_ids), 1, *low))
            if active.any():
                _, image = next(images)
                feats = tracker.encode_frame(self.params, jnp.asarray(image)[None])
                bank, out = tracker.propagate(
                    self.params, bank, feats, t, num, reverse, jnp.asarray(active)
                )
                logits = out.low_res_masks
            for b in np.nonzero(here & show)[0]:
                logits = logits.at[b].set(cond[b][t])
            if not reverse and np.any(snap_at == t):
                snapshot = _take_where(jnp.asarray(snap_at == t), bank, snapshot)
            if show.any():  # (reverse from frame 0 yields nothing, as the official)
                video = np.asarray(self._to_video[1](logits))
                yield t, {obj_ids[b]: video[b] for b in np.nonzero(show)[0]}
        if not reverse:
            self._snapshot = snapshot

    def _preflight(self, obj_ids):
        """Conditioning outputs of every prompted frame, committed to a fresh bank.

        Returns:
            (bank, cond) with cond[b][frame] = [1, 4g, 4g] low-res logits.
        """
        tracker = self._tracker(len(obj_ids))
        bank = tracker.empty_bank()
        cond: list[dict[int, jax.Array]] = [{} for _ in obj_ids]
        frames = sorted({f for o in obj_ids for f in self.prompts[o]})
        for f, image in self.frames.stream(frames, self.prefetch):
            feats = tracker.encode_frame(self.params, jnp.asarray(image)[None])
            outs = {
                b: self._prompt_one(tracker, feats, f, self.prompts[o][f])
                for b, o in enumerate(obj_ids)
                if f in self.prompts[o]
            }
            for b, out in outs.items():
                cond[b][f] = out.low_res_masks[0]
            # Official consolidation binarises every prompted frame (is_mask_from_pts=True).
            bank = self._commit(tracker, bank, feats, f, outs, list(outs))
        return bank, cond

    def _commit(self, tracker, bank, feats, frame, outs, rows):
        num = len(self.prompts)
        low = jnp.zeros((num,) + outs[rows[0]].low_res_masks.shape[1:])
        ptr = jnp.zeros((num, outs[rows[0]].obj_ptr.shape[-1]))
        for b in rows:
            low, ptr = low.at[b].set(outs[b].low_res_masks[0]), ptr.at[b].set(outs[b].obj_ptr[0])
        write = jnp.asarray(np.isin(np.arange(num), rows))
        return tracker.commit(
            self.params, bank, feats, frame, low, ptr, jnp.ones((num,), bool), write
        )

    def _prompt_one(self, tracker, feats, frame, p: _FramePrompt):
        """One object's prompts on an initial conditioning frame, as the official
        ``add_new_mask`` then ``add_new_points`` (box as points 2, 3 before the clicks).

        Returns:
            SamOutputs for one row.
        """
        empty, num, out = tracker.empty_bank(1), len(self.frames), None
        if p.mask is not None:
            out = tracker.prompt(
                self.params,
                empty,
                feats,
                frame,
                num,
                False,
                mask=jnp.asarray(self._mask_input(p.mask)),
                is_init_cond=True,
            )
        coords, labels = self._point_input(p)
        if coords is None:
            return out
        prev = None if out is None else out.low_res_masks
        out = tracker.prompt(
            self.params,
            empty,
            feats,
            frame,
            num,
            False,
            points=(jnp.asarray(coords), jnp.asarray(labels)),
            prev_logits=prev,
            is_init_cond=True,
        )
        return out

    def _mask_input(self, mask: np.ndarray) -> np.ndarray:
        """As ``add_new_mask``: [1, 1, S, S] float mask (antialiased resize, then >= 0.5)."""
        s = self.image_size
        m = mask.astype(np.float32)[None, None]
        if m.shape[-2:] == (s, s):
            return m
        return (resize_bilinear(m, (s, s), antialias=True) >= 0.5).astype(np.float32)

    def _point_input(self, p: _FramePrompt) -> tuple[np.ndarray | None, np.ndarray | None]:
        """[1, N, 2] coords scaled to the model size (float32, as ``add_new_points``), [1, N] labels."""
        pts, lbl = [], []
        if p.box is not None:
            pts.append(p.box.reshape(2, 2))
            lbl.append(np.array(prompt_labels.BOX, np.int32))
        if p.points is not None:
            pts.append(p.points)
            lbl.append(p.labels)
        if not pts:
            return None, None
        wh = np.array([self.frames.width, self.frames.height], np.float32)
        coords = np.concatenate(pts) / wh * np.float32(self.image_size)
        return coords[None].astype(np.float32), np.concatenate(lbl)[None].astype(np.int32)
