"""The memory bank selects exactly the frames the official code concatenates.

The reference is the official ``SAM2Base._prepare_memory_conditioned_features``
itself, with its memory attention replaced by a stub that records which
memories and temporal encodings it was given: every memory is tagged with
its frame index, every ``maskmem_tpos_enc`` row with its own index.
"""

from collections import Counter

import numpy as np
import pytest
import torch

from etam_jax.models import memory_bank as mb
from tests.official_reference import build_official

GRID, MEM_DIM, HIDDEN = 2, 64, 256


class _Recorder(torch.nn.Module):
    """Stands in for the official memory attention and keeps its inputs."""

    d_model = HIDDEN

    def forward(self, curr, curr_pos, memory, memory_pos, num_obj_ptr_tokens):
        self.seen = (memory.clone(), memory_pos.clone(), num_obj_ptr_tokens)
        return curr[0]


@pytest.fixture(scope="module")
def official():
    model = build_official("efficienttam_ti", image_size=GRID * 16)
    with torch.no_grad():
        model.maskmem_tpos_enc.copy_(
            torch.arange(7.0)[:, None, None, None].expand(7, 1, 1, MEM_DIM) * 1000
        )
    model.memory_attention = _Recorder()
    return model


def _entry(frame: int) -> dict:
    return {
        "maskmem_features": torch.full((1, MEM_DIM, GRID, GRID), frame + 1.0),
        "maskmem_pos_enc": [torch.zeros(1, MEM_DIM, GRID, GRID)],
        "obj_ptr": torch.full((1, HIDDEN), frame + 1.0),
    }


def _official_selection(model, frame_idx, cond, tracked, num_frames, reverse):
    output_dict = {
        "cond_frame_outputs": {t: _entry(t) for t in cond},
        "non_cond_frame_outputs": {t: _entry(t) for t in tracked},
    }
    feats = [torch.zeros(GRID * GRID, 1, HIDDEN)]
    model._prepare_memory_conditioned_features(
        frame_idx, False, feats, feats, [(GRID, GRID)], output_dict, num_frames, reverse
    )
    memory, pos, num_ptr = model.memory_attention.seen
    spatial = memory.shape[0] - num_ptr
    frames = memory[: spatial : GRID * GRID, 0, 0].long() - 1
    tpos = (pos[: spatial : GRID * GRID, 0, 0] / 1000).round().long()
    ptrs = memory[spatial::4, 0, 0].long() - 1  # 4 tokens of 64 per pointer
    return Counter(zip(frames.tolist(), tpos.tolist())), Counter(ptrs.tolist())


def _our_selection(frame_idx, cond, tracked, num_frames, reverse):
    bank = mb.empty_bank(1, 4, 15, GRID * GRID, MEM_DIM, HIDDEN)
    tag = lambda t: (
        np.full((1, GRID * GRID, MEM_DIM), t + 1.0),
        np.full((1, HIDDEN), t + 1.0),
    )
    for t in cond:
        bank = mb.write_cond(bank, *tag(t), t, np.ones(1, bool))
    for t in tracked:  # in the order they were tracked
        bank = mb.write_recent(bank, *tag(t), t, np.ones(1, bool))
    sel = mb.select_memories(bank, frame_idx, reverse, num_frames, num_maskmem=7, max_obj_ptrs=16)
    valid = np.asarray(sel.valid[0])
    frames = np.asarray(sel.feats[0, :, 0, 0]).astype(int)[valid] - 1
    tpos = np.asarray(sel.tpos_index)[valid]
    ptrs = np.asarray(sel.ptrs[0, :, 0]).astype(int)[np.asarray(sel.ptr_valid[0])] - 1
    return Counter(zip(frames.tolist(), tpos.tolist())), Counter(ptrs.tolist())


def _scenario(rng, reverse):
    """A video, its conditioning frames, and the frames tracked up to frame_idx."""
    num_frames = int(rng.integers(4, 40))
    start = int(rng.integers(0, num_frames))
    cond = sorted({start, *rng.integers(0, num_frames, rng.integers(0, 3)).tolist()})
    step = -1 if reverse else 1
    end = int(rng.integers(0, num_frames))
    walk = list(range(start, end + step, step)) if (end - start) * step > 0 else [start]
    frame_idx = walk[-1]
    tracked = [t for t in walk[:-1] if t not in cond]
    return frame_idx, cond, tracked, num_frames


@pytest.mark.parametrize("reverse", [False, True])
def test_selection_matches_official(official, reverse):
    rng = np.random.default_rng(int(reverse))
    for _ in range(25):
        frame_idx, cond, tracked, num_frames = _scenario(rng, reverse)
        if frame_idx in cond:
            continue
        args = (frame_idx, cond, tracked, num_frames, reverse)
        assert _our_selection(*args) == _official_selection(official, *args), args


def test_cond_write_replaces_same_frame_and_clears_ring():
    bank = mb.empty_bank(2, 2, 15, 1, 1, 1)
    one = lambda v: (np.full((2, 1, 1), v), np.full((2, 1), v))
    bank = mb.write_recent(bank, *one(1.0), 5, np.array([True, True]))
    bank = mb.write_cond(bank, *one(2.0), 5, np.array([True, False]))
    bank = mb.write_cond(bank, *one(3.0), 5, np.array([True, False]))
    assert np.asarray(bank.cond_valid).tolist() == [[True, False], [False, False]]
    assert float(bank.cond_ptr[0, 0, 0]) == 3.0
    assert np.asarray(bank.recent_valid[:, 5]).tolist() == [False, True]
    rows = mb.take_rows(bank, np.array([1]))
    back = mb.put_rows(bank, np.array([1]), rows)
    assert all(
        np.array_equal(a, b) for a, b in zip(np.asarray(bank.cond_ptr), np.asarray(back.cond_ptr))
    )
