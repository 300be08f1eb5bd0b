"""The per-source pipeline end to end: shapes, padding, bad examples and the skip limit."""

import grain
import numpy as np
import pytest

from data_pipelines.clip_sampling import SamplingSpec, sample_clip
from data_pipelines.pipeline import PipelineSpec, SourceSpec, mixed_batches, training_batches
from data_pipelines.records import SkippedExample, error_record
from data_pipelines.transforms import AugmentSpec
from etam_jax.errors import EtamError
from tests.data_pipelines.drawn_records import drawn_records, truncated

NO_SHARD = grain.sharding.NoSharding()


def video_spec(**kw) -> PipelineSpec:
    base = dict(
        sources=(SourceSpec("sav", 1.0, 3, SamplingSpec(3, 4)),),
        augment=AugmentSpec(resolution=32),
        seed=7,
    )
    return PipelineSpec(**{**base, **kw})


def test_batch_shapes_and_padding():
    records = drawn_records(4, num_frames=4, num_objects=2, height=48, width=64) * 30
    batch = next(iter(training_batches([records], video_spec(), NO_SHARD)))
    shapes = {k: (v.shape, v.dtype.name) for k, v in batch.items()}
    assert shapes == {
        "frames": ((3, 3, 32, 32, 3), "uint8"),
        "masks": ((3, 3, 4, 32, 32), "bool"),
        "obj_valid": ((3, 4), "bool"),
        "frame_valid": ((3, 3), "bool"),
        "object_ids": ((3, 4), "int32"),
        "frame_indices": ((3, 3), "int32"),
    }
    assert not batch["obj_valid"][:, 2:].any() and not batch["masks"][:, :, 2:].any()
    assert batch["obj_valid"][:, 0].all() and batch["frame_valid"].all()
    assert (batch["object_ids"][:, 2:] == -1).all()
    assert (np.diff(batch["frame_indices"], axis=1) == 4).all()  # consecutive annotated frames
    assert batch["masks"][:, 0][batch["obj_valid"]].reshape(-1, 32 * 32).any(axis=1).all()


def test_bad_example_is_replaced_in_place():
    """Only the slot that drew the bad record changes; everything else stays put."""
    clean = drawn_records(5, num_frames=2, num_objects=1, height=32, width=32) * 24
    dirty = list(clean)
    for i in range(2, len(dirty), 5):
        dirty[i] = truncated(dirty[i])
    spec = video_spec(sources=(SourceSpec("sav", 1.0, 4, SamplingSpec(2, 1)),))
    a = mixed_batches([clean], spec, NO_SHARD)
    b = mixed_batches([dirty], spec, NO_SHARD)
    replaced = 0
    for i in range(6):
        x, y = a[i], b[i]
        bad = y["num_skipped"] > 0
        assert x["num_skipped"].sum() == 0 and y["frames"].shape == x["frames"].shape
        np.testing.assert_array_equal(x["frames"][~bad], y["frames"][~bad])
        np.testing.assert_array_equal(x["masks"][~bad], y["masks"][~bad])
        assert all(f.startswith(b"/data/sav_002") for f in y["skipped_files"][bad])
        replaced += int(bad.sum())
    assert replaced > 0


def test_skips_are_counted_and_stop_the_run():
    records = drawn_records(4, num_frames=2, num_objects=1, height=32, width=32) * 30
    records[5] = error_record(id="x", source="sav", file="/data/broken.mp4", reason="truncated mp4")
    with pytest.raises(SkippedExample, match="broken.mp4: truncated mp4"):
        sample_clip(records[5], SamplingSpec(2, 1), np.random.default_rng(0))
    spec = video_spec(
        sources=(SourceSpec("sav", 1.0, 4, SamplingSpec(2, 1)),),
        max_skipped_fraction=0.5,
        skip_check_after=1,
    )
    it = iter(training_batches([records], spec, NO_SHARD))
    for _ in range(30):
        batch = next(it)
    assert "num_skipped" not in batch and it.delivered == 120
    assert it.skipped >= 1  # 1 bad record in 120, read once per epoch
    assert it.get_state()["skipped"] == it.skipped

    bad = [truncated(r) if i % 2 else r for i, r in enumerate(records)]
    spec = video_spec(sources=spec.sources, max_skipped_fraction=0.1, skip_check_after=20)
    it = iter(training_batches([bad], spec, NO_SHARD))
    with pytest.raises(EtamError, match=r"max_skipped_fraction=0.1.*/data/sav_00"):
        for _ in range(20):
            next(it)


def test_spec_from_default_config():
    from data_pipelines.pipeline import records_per_spec, sources_from_config, spec_from_config
    from experiments.configs import data_defaults

    spec = spec_from_config(data_defaults.get_config())
    assert sorted(
        (s.name, s.weight, s.sampling.num_frames, s.sampling.max_objects) for s in spec.sources
    ) == [("sa1b", 0.1, 1, 64), ("sav", 0.9, 8, 3)]
    assert spec.augment == AugmentSpec()  # the config's augmentations are SAM 2's defaults
    assert spec.max_skipped_fraction == 0.01
    videos, images = drawn_records(1, 1, 1), drawn_records(1, 1, 1, "sa1b")
    by_name = records_per_spec({"sav": videos, "sa1b": images}, spec)
    assert [r[0]["source"] for r in by_name] == [s.name for s in spec.sources]
    with pytest.raises(EtamError, match=r"no data source for \['sav'\]"):
        records_per_spec({"sa1b": images}, spec)
    with pytest.raises(EtamError, match=r"config.data.sources.sa1b.path"):
        sources_from_config(data_defaults.get_config())


def test_real_formats_end_to_end(tmp_path):
    """SA-V mp4+json and SA-1B tars from the synthetic writer, through the real readers."""
    from data_pipelines import synthetic
    from data_pipelines.pipeline import sources_from_config, spec_from_config
    from experiments.configs import data_defaults

    synthetic.write_sa1b(tmp_path / "sa1b", num_images=3)
    synthetic.write_sav(tmp_path / "sav", num_videos=2)
    cfg = data_defaults.get_config()
    cfg.sources.sav.path, cfg.sources.sa1b.path = str(tmp_path / "sav"), str(tmp_path / "sa1b")
    cfg.augment.resolution, cfg.workers, cfg.mix_block = 64, 0, 10
    it = iter(training_batches(sources_from_config(cfg), spec_from_config(cfg), NO_SHARD))
    kinds = set()
    for _ in range(10):
        batch = next(it)
        kinds.add(batch["masks_packed"].shape[1:3])  # the config ships masks as bits
        assert batch["obj_valid"].any(axis=1).all()
    assert kinds == {(8, 3), (1, 64)} and it.skipped == 0
