"""Clip sampling: consecutive annotated frames, a visible object on the first, uniform starts."""

import numpy as np
import pytest

from data_pipelines.clip_sampling import SamplingSpec, sample_clip
from data_pipelines.records import SkippedExample, decode_rle
from tests.data_pipelines.drawn_records import drawn_clip, record_from_arrays


def late_object_record(num_frames: int = 10, appear: int = 4):
    """Object 0 has pixels only from frame `appear` on, object 1 only before it."""
    frames, masks = drawn_clip(1, num_frames=num_frames, num_objects=2)
    masks[:appear, 0] = False
    masks[appear:, 1] = False
    return record_from_arrays(frames, masks, "late")


def test_frames_and_objects():
    rec = late_object_record()
    rng = np.random.default_rng(0)
    for _ in range(50):
        f, o = sample_clip(rec, SamplingSpec(num_frames=3, max_objects=3), rng)
        assert np.array_equal(f, np.arange(f[0], f[0] + 3)) and 0 <= f[0] <= 7
        assert 1 <= len(o) <= 2 and len(set(o.tolist())) == len(o)
        for j in o:  # visible on the first frame, checked on the decoded pixels
            assert decode_rle(rec["rle_counts"][f[0], j], rec["height"], rec["width"]).any()


def test_starts_uniform_over_good_starts():
    """Every start 0..7 shows an object here; each is drawn ~1/8 of the time."""
    rec = late_object_record()
    rng = np.random.default_rng(1)
    starts = [sample_clip(rec, SamplingSpec(3, 1), rng)[0][0] for _ in range(800)]
    counts = np.bincount(starts, minlength=8)
    assert counts.size == 8 and np.all(np.abs(counts - 100) < 40), counts


def test_only_starts_with_visible_objects():
    frames, masks = drawn_clip(2, num_frames=10, num_objects=1)
    masks[:6] = False  # nothing visible before frame 6
    rec = record_from_arrays(frames, masks, "empty_start")
    rng = np.random.default_rng(2)
    starts = {int(sample_clip(rec, SamplingSpec(3, 1), rng)[0][0]) for _ in range(60)}
    assert starts == {6, 7}


def test_object_cap_and_reverse():
    frames, masks = drawn_clip(3, num_frames=4, num_objects=4)
    rec = record_from_arrays(frames, masks, "many")
    f, o = sample_clip(rec, SamplingSpec(4, 2, reverse_time_prob=1.0), np.random.default_rng(3))
    assert f.tolist() == [3, 2, 1, 0] and len(o) == 2


def test_bad_records_are_skipped():
    frames, masks = drawn_clip(4, num_frames=3, num_objects=1)
    with pytest.raises(SkippedExample, match="clip needs 8"):
        sample_clip(
            record_from_arrays(frames, masks, "short"), SamplingSpec(8, 3), np.random.default_rng(0)
        )
    masks[:] = False
    masks[-1, 0, :3, :3] = True  # visible only on the last frame: no 2-frame clip starts there
    with pytest.raises(SkippedExample, match="visible object"):
        sample_clip(
            record_from_arrays(frames, masks, "hidden"),
            SamplingSpec(2, 3),
            np.random.default_rng(0),
        )
