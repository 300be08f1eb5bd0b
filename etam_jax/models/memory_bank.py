"""A static-shape memory bank: fixed slots with validity masks and frame indices.

The official model keeps every past output in Python dicts keyed by frame
index (``output_dict["cond_frame_outputs"]`` / ``["non_cond_frame_outputs"]``)
and concatenates whatever it finds (``sam2_base._prepare_memory_conditioned_features``).
Here each object (row ``b``) owns two fixed groups of slots:

- ``cond_*``: conditioning frames (frames the user prompted first), up to
  ``num_cond`` of them; all are attended (``max_cond_frames_in_attn = -1``).
- ``recent_*``: non-conditioning frames (tracked or corrected), a ring of
  ``num_recent`` slots where frame ``t`` lives in slot ``t % num_recent``.
  Lookups match the stored frame index, so a ring of at least
  ``max(num_maskmem, max_obj_ptrs_in_encoder) - 1`` slots answers every
  official lookup while propagating in one direction.

Every slot holds the memory features (stored in bfloat16, as the official
video predictor stores them) and the 256-d object pointer. Reading the bank
(:func:`select_memories`) gathers, for the current frame, exactly the
frames the official code would concatenate, as slots plus validity masks;
the memory attention masks out the invalid ones, and since attention is
invariant to the order of keys (RoPE depends only on the position inside a
frame), slot order does not matter.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

STORAGE_DTYPE = jnp.bfloat16  # sam2_video_predictor._run_single_frame_inference: .to(bfloat16)


@struct.dataclass
class MemoryBank:
    """Per-object memories; leading axis B = objects.

    Attributes:
      cond_feats: [B, C, HW, D] memory features of conditioning frames.
      cond_ptr: [B, C, P] object pointers of conditioning frames.
      cond_frame: [B, C] int32 frame index (-1 where empty).
      cond_valid: [B, C] bool.
      recent_feats, recent_ptr, recent_frame, recent_valid: the same for the
        ring of non-conditioning frames, K slots.
    """

    cond_feats: jax.Array
    cond_ptr: jax.Array
    cond_frame: jax.Array
    cond_valid: jax.Array
    recent_feats: jax.Array
    recent_ptr: jax.Array
    recent_frame: jax.Array
    recent_valid: jax.Array


@struct.dataclass
class SelectedMemories:
    """What the memory attention reads for one frame.

    Attributes:
      feats: [B, S, HW, D] float32 spatial memories (S = C + num_maskmem - 1).
      tpos_index: [S] int32 row of ``maskmem_tpos_enc`` for each slot.
      valid: [B, S] bool.
      ptrs: [B, Q, P] object pointers (Q = C + max_obj_ptrs - 1).
      ptr_valid: [B, Q] bool.
    """

    feats: jax.Array
    tpos_index: jax.Array
    valid: jax.Array
    ptrs: jax.Array
    ptr_valid: jax.Array


def empty_bank(
    batch: int,
    num_cond: int,
    num_recent: int,
    tokens: int,
    mem_dim: int,
    ptr_dim: int,
    dtype=STORAGE_DTYPE,
) -> MemoryBank:
    """A bank with every slot empty.

    Args:
      batch: number of objects B.
      num_cond: conditioning slots C per object.
      num_recent: ring slots K per object.
      tokens: HW, memory tokens per frame.
      mem_dim: D, memory channels (64).
      ptr_dim: object pointer width (256).
      dtype: storage dtype of the memory features (bfloat16 as the official
        predictor; float32 keeps them exact).
    """

    def group(n: int) -> tuple[jax.Array, ...]:
        return (
            jnp.zeros((batch, n, tokens, mem_dim), dtype),
            jnp.zeros((batch, n, ptr_dim), jnp.float32),
            jnp.full((batch, n), -1, jnp.int32),
            jnp.zeros((batch, n), bool),
        )

    return MemoryBank(*group(num_cond), *group(num_recent))


def _put(slots: jax.Array, slot: jax.Array, value: jax.Array, write: jax.Array) -> jax.Array:
    """slots[b, slot[b]] = value[b] where write[b]; slots [B, N, ...], value [B, ...]."""
    hit = (jnp.arange(slots.shape[1])[None, :] == slot[:, None]) & write[:, None]
    hit = hit.reshape(hit.shape + (1,) * (slots.ndim - 2))
    return jnp.where(hit, value[:, None].astype(slots.dtype), slots)


def _write_group(bank: MemoryBank, group: str, slot, feats, ptr, frame_idx, write) -> MemoryBank:
    batch = feats.shape[0]
    frame = jnp.full((batch,), frame_idx, jnp.int32)
    updates = {
        f"{group}_feats": _put(getattr(bank, f"{group}_feats"), slot, feats, write),
        f"{group}_ptr": _put(getattr(bank, f"{group}_ptr"), slot, ptr, write),
        f"{group}_frame": _put(getattr(bank, f"{group}_frame"), slot, frame, write),
        f"{group}_valid": _put(
            getattr(bank, f"{group}_valid"), slot, jnp.ones((batch,), bool), write
        ),
    }
    return bank.replace(**updates)


def write_cond(bank: MemoryBank, feats, ptr, frame_idx, write) -> MemoryBank:
    """Stores a conditioning-frame output for the objects where ``write``.

    Reuses the slot already holding ``frame_idx``, else the first empty one
    (the caller checks capacity with :func:`cond_slots_free`; a full bank
    overwrites slot 0). As ``propagate_in_video_preflight``, a frame that
    becomes conditioning leaves the non-conditioning ring.

    Args:
      feats: [B, HW, D] memory features; ptr: [B, P] object pointers.
      frame_idx: scalar frame index; write: [B] bool.
    """
    same = bank.cond_valid & (bank.cond_frame == frame_idx)
    slot = jnp.where(same.any(1), jnp.argmax(same, 1), jnp.argmax(~bank.cond_valid, 1))
    bank = _write_group(bank, "cond", slot, feats, ptr, frame_idx, write)
    stale = (bank.recent_frame == frame_idx) & write[:, None]
    return bank.replace(recent_valid=bank.recent_valid & ~stale)


def write_recent(bank: MemoryBank, feats, ptr, frame_idx, write) -> MemoryBank:
    """Stores a non-conditioning output in ring slot ``frame_idx % K`` where ``write``.

    Args: as :func:`write_cond`.
    """
    num_recent = bank.recent_frame.shape[1]
    slot = jnp.full((feats.shape[0],), jnp.asarray(frame_idx) % num_recent, jnp.int32)
    return _write_group(bank, "recent", slot, feats, ptr, frame_idx, write)


def cond_slots_free(bank: MemoryBank) -> jax.Array:
    """[B] number of empty conditioning slots."""
    return (~bank.cond_valid).sum(1)


def _lookup_recent(bank: MemoryBank, targets: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Slot index [B, T] and found flag [B, T] of frames ``targets`` [T] in the ring."""
    match = bank.recent_valid[:, None, :] & (
        bank.recent_frame[:, None, :] == targets[None, :, None]
    )
    return jnp.argmax(match, -1), match.any(-1)


def _take(slots: jax.Array, index: jax.Array) -> jax.Array:
    """slots [B, N, ...] gathered at index [B, T] -> [B, T, ...]."""
    return jax.vmap(lambda s, i: s[i])(slots, index)


def select_memories(
    bank: MemoryBank,
    frame_idx,
    reverse,
    num_frames,
    *,
    num_maskmem: int,
    max_obj_ptrs: int,
    temporal_stride: int = 1,
    pointers_past_only: bool = True,
) -> SelectedMemories:
    """The memories the official code concatenates for frame ``frame_idx``.

    As ``sam2_base._prepare_memory_conditioned_features`` (not an initial
    conditioning frame): all conditioning frames at temporal position 0, then
    the frames ``t_rel = 1 .. num_maskmem - 1`` before (after, in reverse)
    the current one from the ring, ``maskmem_tpos_enc[t_rel - 1]``; object
    pointers of the conditioning frames not in the future
    (``only_obj_ptrs_in_the_past_for_eval``) and of the ring frames
    ``t_diff = 1 .. min(num_frames, max_obj_ptrs) - 1`` away.

    Args:
      bank: the bank.
      frame_idx, reverse, num_frames: scalars (may be traced).
      num_maskmem, max_obj_ptrs, temporal_stride: model config (static).
      pointers_past_only: static; ``only_obj_ptrs_in_the_past_for_eval``. Training
        (``self.training`` in the official code) reads the pointers of every
        conditioning frame, future ones included: pass False.
    """
    frame_idx = jnp.asarray(frame_idx, jnp.int32)
    sign = jnp.where(reverse, -1, 1)
    r = temporal_stride
    t_rel = jnp.arange(num_maskmem - 1, 0, -1)  # official t_pos = 1 .. num_maskmem - 1
    # Strided positions as the official loop: t_rel 1 is the adjacent frame.
    fwd = jnp.where(t_rel == 1, frame_idx - 1, ((frame_idx - 2) // r) * r - (t_rel - 2) * r)
    bwd = jnp.where(t_rel == 1, frame_idx + 1, -(-(frame_idx + 2) // r) * r + (t_rel - 2) * r)
    slot, found = _lookup_recent(bank, jnp.where(reverse, bwd, fwd))
    feats = jnp.concatenate([bank.cond_feats, _take(bank.recent_feats, slot)], 1)
    num_cond = bank.cond_valid.shape[1]
    tpos = jnp.concatenate([jnp.full((num_cond,), num_maskmem - 1), t_rel - 1]).astype(jnp.int32)
    valid = jnp.concatenate([bank.cond_valid, found], 1)

    t_diff = jnp.arange(1, max_obj_ptrs)
    targets = frame_idx - sign * t_diff  # the past: before, or after in reverse
    in_video = (
        (t_diff < jnp.minimum(num_frames, max_obj_ptrs)) & (targets >= 0) & (targets < num_frames)
    )
    pslot, pfound = _lookup_recent(bank, targets)
    cond_past = bank.cond_valid
    if pointers_past_only:
        cond_past = cond_past & (sign * (bank.cond_frame - frame_idx) <= 0)
    ptrs = jnp.concatenate([bank.cond_ptr, _take(bank.recent_ptr, pslot)], 1)
    ptr_valid = jnp.concatenate([cond_past, pfound & in_video[None]], 1)
    return SelectedMemories(feats.astype(jnp.float32), tpos, valid, ptrs, ptr_valid)


def take_rows(bank: MemoryBank, rows) -> MemoryBank:
    """The bank of objects ``rows`` (int array [b]) only."""
    rows = jnp.asarray(rows)
    return jax.tree.map(lambda x: x[rows], bank)


def put_rows(bank: MemoryBank, rows, sub: MemoryBank) -> MemoryBank:
    """``bank`` with objects ``rows`` replaced by ``sub`` (from :func:`take_rows`)."""
    rows = jnp.asarray(rows)
    return jax.tree.map(lambda x, y: x.at[rows].set(y), bank, sub)
