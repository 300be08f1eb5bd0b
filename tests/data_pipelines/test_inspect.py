"""Mask overlays: colours land exactly on mask pixels; inspect writes one PNG per example."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from data_pipelines.clip_sampling import SamplingSpec
from data_pipelines.inspect_data import (
    draw_clip,
    inspect_source,
    inspect_vos,
    is_vos_layout,
    object_colors,
    overlay,
)
from data_pipelines.transforms import AugmentSpec
from tests.data_pipelines.synthetic_data import synth_root  # noqa: F401


def test_overlay_colours_only_mask_pixels() -> None:
    frame = np.full((20, 30, 3), 100, np.uint8)
    masks = np.zeros((2, 20, 30), bool)
    masks[0, 2:8, 3:9] = True
    masks[1, 10:18, 15:25] = True
    out = overlay(frame, masks)
    colors = object_colors(2)
    np.testing.assert_array_equal(out[~masks.any(0)], frame[~masks.any(0)])
    np.testing.assert_array_equal(out[4, 5], np.round(0.5 * 100 + 0.5 * colors[0].astype(float)))
    np.testing.assert_array_equal(out[2, 3], colors[0])  # outline pixel
    np.testing.assert_array_equal(out[10, 15], colors[1])
    strip = draw_clip(np.stack([frame] * 5), np.stack([masks] * 5), max_frames=3)
    assert strip.shape == (20, 90, 3)


def test_inspect_records_and_pipeline(synth_root: Path, tmp_path: Path) -> None:
    paths = inspect_source(synth_root / "sav", tmp_path / "raw", num=2)
    assert sorted(p.name for p in paths) == ["sav_sav_000001.png", "sav_sav_000002.png"]
    assert Image.open(paths[0]).size == (6 * 192, 128)  # 12 annotated frames, max 8 -> every 2nd: 6
    pipeline = (SamplingSpec(num_frames=3, max_objects=2), AugmentSpec(resolution=64))
    paths = inspect_source(synth_root / "sa1b", tmp_path / "aug", num=1, pipeline=pipeline)
    assert Image.open(paths[0]).size == (64, 64)


def test_inspect_vos_layouts(synth_root: Path, tmp_path: Path) -> None:
    assert is_vos_layout(synth_root / "davis") and not is_vos_layout(synth_root / "sav")
    paths = inspect_vos(synth_root / "davis", tmp_path, num=1, max_frames=4)
    assert [p.name for p in paths] == ["vos_synth-001.png"]
    assert Image.open(paths[0]).size == (4 * 192, 128)  # 12 annotated frames, at most 4: every 3rd
