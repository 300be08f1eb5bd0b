"""The static-shape tracker: one compiled step per (model, resolution, object count).

Ports ``sam2_base.track_step`` and the video predictor's use of it
(``sam2_video_predictor``) into pure functions of a fixed-slot memory bank
(``memory_bank.py``). Objects are rows of the batch B and are independent
(SAM 2.1-style): each row has its own conditioning frames and memories.

API (all jitted; ``params`` is ``nnx.split(model)[1]``, frames are scalars)::

    tracker = Tracker(model, num_objects=B)             # graphdef kept inside
    bank = tracker.empty_bank()                          # all slots empty
    feats = tracker.encode_frame(params, image)          # image [1, S, S, 3] normalised
    # prompts on a frame, per object (rows, usually B = 1; not written to memory):
    out = tracker.prompt(params, tracker.take_rows(bank, rows), feats, frame_idx, num_frames,
                         reverse, points=(coords [b, N, 2] in S-pixels, labels [b, N]),
                         prev_logits=None | [b, 1, 4g, 4g], is_init_cond=True)
    out = tracker.prompt(..., mask=[b, 1, S, S] binary, is_init_cond=...)   # mask prompt
    # once the prompts of a frame are final (the predictor's preflight):
    bank = tracker.commit(params, bank, feats, frame_idx, low_res_masks [B, 1, 4g, 4g],
                          obj_ptr [B, 256], is_cond [B], write [B])
    # tracking one frame for every object where ``active``:
    bank, out = tracker.propagate(params, bank, feats, frame_idx, num_frames, reverse, active [B])
    out.low_res_masks  # [B, 1, 4g, 4g] logits; resize bilinearly to the video size

A box prompt is two points labelled 2 and 3 first in ``points`` (as both
official predictors encode it). ``is_init_cond`` is true on a frame the
object has not been tracked on (it becomes a conditioning frame:
``commit(is_cond=True)``); a correction on a tracked frame passes
``is_init_cond=False`` and the previous logits clamped to [-32, 32] and is
committed with ``is_cond=False`` (``add_all_frames_to_correct_as_cond`` is
false). ``propagate`` must not overwrite rows whose output on this frame
is already consolidated (pass ``active=False`` and use the stored output).

Compilations: ``propagate`` and ``commit`` compile once per (model,
resolution, B); ``prompt`` once per (rows, number of points, kind of
prompt, is_init_cond), since SAM attends over every prompt token and
padding points would change the result.

Cost and capacity: on accelerators every slot is attended whether valid or
not (masked), so the memory attention costs as if the bank were full:
``num_cond_slots + num_maskmem - 1`` frames of ``g*g`` tokens; on CPU the
slots empty for every object are skipped (no keys, no attention), as the
official code never sees them. Size ``num_cond_slots`` to the
largest number of conditioning frames any object will get (a predictor
knows it from the prompts); a commit to a full conditioning group
overwrites slot 0 (check with ``memory_bank.cond_slots_free``). The
non-conditioning ring keeps frame ``t`` in slot ``t % num_recent``: exact
for propagation in one direction; revisiting frames evicted from the ring
(e.g. reverse after a long forward pass) needs a snapshot of the bank
(``take_rows``/``put_rows``), as the official code keeps every frame.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from flax import nnx, struct

from etam_jax.models import memory_bank as mb
from etam_jax.models.efficienttam import EfficientTAM
from etam_jax.models.memory_conditioning import condition_on_bank
from etam_jax.models.resize import resize_bilinear
from etam_jax.models.sam_heads import (
    MULTIMASK_MAX_POINTS,
    SamOutputs,
    forward_sam_heads,
    use_mask_as_output,
)

# Official tracker flags, equal in all eight configs (and the video predictor's overrides).
MULTIMASK_OUTPUT_IN_SAM = True
MULTIMASK_OUTPUT_FOR_TRACKING = True
MULTIMASK_MIN_PT_NUM, MULTIMASK_MAX_PT_NUM = 0, MULTIMASK_MAX_POINTS
PREV_LOGITS_CLAMP = 32.0  # sam2_video_predictor.add_new_points


@struct.dataclass
class FrameFeatures:
    """Image features of one frame: ``features``/``pos`` [1, g, g, 256]."""

    features: jax.Array
    pos: jax.Array


def use_multimask(is_init_cond: bool, num_points: int) -> bool:
    """As ``sam2_base._use_multimask``."""
    return (
        MULTIMASK_OUTPUT_IN_SAM
        and (is_init_cond or MULTIMASK_OUTPUT_FOR_TRACKING)
        and MULTIMASK_MIN_PT_NUM <= num_points <= MULTIMASK_MAX_PT_NUM
    )


def _broadcast(frame: FrameFeatures, batch: int) -> tuple[jax.Array, jax.Array]:
    shape = (batch,) + frame.features.shape[1:]
    return jnp.broadcast_to(frame.features, shape), jnp.broadcast_to(frame.pos, shape)


def _conditioned(model, bank, frame, frame_idx, num_frames, reverse, is_init_cond: bool):
    """Features with memory (``_prepare_memory_conditioned_features``) for bank rows."""
    features, pos = _broadcast(frame, bank.cond_valid.shape[0])
    if is_init_cond:
        return model.add_no_memory(features)
    return condition_on_bank(model, bank, features, pos, frame_idx, num_frames, reverse)


def _prompt(
    model,
    bank,
    frame,
    frame_idx,
    num_frames,
    reverse,
    *,
    points=None,
    mask=None,
    prev_logits=None,
    is_init_cond: bool = True,
) -> SamOutputs:
    """``track_step(run_mem_encoder=False)`` with point or mask inputs."""
    batch = bank.cond_valid.shape[0]
    if mask is not None:  # use_mask_input_as_output_without_sam: no memory at all
        return use_mask_as_output(model, _broadcast(frame, batch)[0], mask)
    features = _conditioned(model, bank, frame, frame_idx, num_frames, reverse, is_init_cond)
    if prev_logits is not None:
        prev_logits = jnp.clip(prev_logits, -PREV_LOGITS_CLAMP, PREV_LOGITS_CLAMP)
    multimask = use_multimask(is_init_cond, points[1].shape[1])
    return forward_sam_heads(model, features, points, prev_logits, multimask)


def _encode_memory(model, frame, high_res_masks, binarize):
    features, _ = _broadcast(frame, high_res_masks.shape[0])
    return model.encode_new_memory(features, high_res_masks, binarize)["vision_features"]


def _commit(
    model,
    bank,
    frame,
    frame_idx,
    low_res_masks,
    obj_ptr,
    is_cond,
    write,
    binarize: bool,
):
    """The predictor's preflight: memory of the consolidated masks, then store."""
    high_res = resize_bilinear(low_res_masks, (model.image_size, model.image_size))
    flags = jnp.full((low_res_masks.shape[0],), binarize)  # is_mask_from_pts=True there
    feats = _encode_memory(model, frame, high_res, flags)
    feats = feats.reshape(feats.shape[0], -1, feats.shape[-1])
    bank = mb.write_cond(bank, feats, obj_ptr, frame_idx, write & is_cond)
    return mb.write_recent(bank, feats, obj_ptr, frame_idx, write & ~is_cond)


def _propagate(model, bank, frame, frame_idx, num_frames, reverse, active):
    """``track_step`` on a frame without prompts, memory encoded and stored where ``active``."""
    features = _conditioned(model, bank, frame, frame_idx, num_frames, reverse, False)
    out = forward_sam_heads(model, features, None, None, use_multimask(False, 0))
    binarize = jnp.zeros((features.shape[0],), bool)  # no point inputs: sigmoid
    feats = _encode_memory(model, frame, out.high_res_masks, binarize)
    feats = feats.reshape(feats.shape[0], -1, feats.shape[-1])
    return mb.write_recent(bank, feats, out.obj_ptr, frame_idx, active), out


class Tracker:
    """Jitted tracking steps for one model and a fixed number of objects.

    Args:
      model: the EfficientTAM module (only its graph definition is kept;
        parameters are passed to every call).
      num_objects: B, objects tracked together.
      num_cond_slots: conditioning frames kept per object (see the module docstring).
      num_recent: ring slots for non-conditioning frames (default: enough
        for every official lookup, ``max(num_maskmem, max_obj_ptrs) - 1``).
      binarize_clicked: binarise masks of prompted frames before the memory
        encoder (``binarize_mask_from_pts_for_mem_enc``, set by the official
        video predictor builder).
      storage_dtype: dtype of stored memory features (bfloat16, as the
        official predictor stores them; float32 to keep them exact).
    """

    def __init__(
        self,
        model: EfficientTAM,
        *,
        num_objects: int,
        num_cond_slots: int = 8,
        num_recent: int | None = None,
        binarize_clicked: bool = True,
        storage_dtype=mb.STORAGE_DTYPE,
    ):
        self.graphdef = nnx.graphdef(model)
        self.num_objects = num_objects
        self.storage_dtype = storage_dtype
        self.num_cond_slots = num_cond_slots
        self.num_recent = num_recent or max(model.num_maskmem, model.max_obj_ptrs_in_encoder) - 1
        self.grid = model.image_size // model.backbone_stride
        self.mem_dim = model.memory_encoder.out_dim
        self.ptr_dim = model.no_obj_ptr.shape[-1]
        merge = self._merged
        self.encode_frame = jax.jit(merge(_encode_frame))
        self.prompt = jax.jit(merge(_prompt), static_argnames=("is_init_cond",))
        self.commit = jax.jit(functools.partial(merge(_commit), binarize=binarize_clicked))
        self.propagate = jax.jit(merge(_propagate))

    def _merged(self, fn):
        """``fn(model, ...)`` as a pure function of ``(params, ...)``."""

        @functools.wraps(fn)
        def pure(params, *args, **kwargs):
            return fn(nnx.merge(self.graphdef, params), *args, **kwargs)

        return pure

    def empty_bank(self, num_objects: int | None = None) -> mb.MemoryBank:
        """A memory bank with every slot empty (``num_objects`` rows, default B)."""
        return mb.empty_bank(
            num_objects or self.num_objects,
            self.num_cond_slots,
            self.num_recent,
            self.grid * self.grid,
            self.mem_dim,
            self.ptr_dim,
            self.storage_dtype,
        )

    take_rows = staticmethod(mb.take_rows)
    put_rows = staticmethod(mb.put_rows)


def _encode_frame(model: EfficientTAM, image: jax.Array) -> FrameFeatures:
    out = model.forward_image(image)
    return FrameFeatures(out["vision_features"], out["vision_pos_enc"])
