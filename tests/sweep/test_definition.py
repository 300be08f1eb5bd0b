"""The memory-pooling sweep's grid and the override flags `etam sweep` emits."""

from pathlib import Path

import pytest

from etam_jax.errors import EtamError
from etam_jax.sweep.definition import (
    fill_data,
    load_sweep,
    override_flags,
    select_points,
)

SWEEP_FILE = Path(__file__).resolve().parents[2] / "experiments" / "sweeps" / "memory_pooling.py"


def _triples(sweep):
    return {(p.model, p.window, p.correction) for p in sweep.points}


def test_full_grid_is_windows_times_corrections_times_models():
    sweep = load_sweep(SWEEP_FILE, "full")
    want = {(m, 1, "none") for m in ("efficienttam_ti", "efficienttam_s")}
    want |= {
        (m, w, c)
        for m in ("efficienttam_ti", "efficienttam_s")
        for w in (2, 4)
        for c in ("none", "eq5", "eq6")
    }
    assert _triples(sweep) == want and len(sweep.points) == 14
    assert {p.image_size for p in sweep.points} == {1024}
    assert "ti_w1_none" in {p.name for p in sweep.points} and "s_w4_eq6" in {
        p.name for p in sweep.points
    }


def test_local_is_every_ti_point_and_ci_is_two():
    local, ci = load_sweep(SWEEP_FILE, "local"), load_sweep(SWEEP_FILE, "ci")
    full_ti = {t for t in _triples(load_sweep(SWEEP_FILE, "full")) if t[0] == "efficienttam_ti"}
    assert _triples(local) == full_ti and len(local.points) == 7
    assert [p.name for p in ci.points] == ["ti_w1_none", "ti_w2_eq5"]
    for sweep in (local, ci):  # every window divides the feature grid
        assert all((p.image_size // 16) % p.window == 0 for p in sweep.points)


def test_override_flags_name_the_model_fields():
    point = select_points(load_sweep(SWEEP_FILE, "full"), "s_w2_eq6")[0]
    flags = override_flags(point.overrides, "/d")
    for want in (
        "--config.model.name=efficienttam_s",
        "--config.model.image_size=1024",
        "--config.model.memory_attention.pool_window=2",
        "--config.model.memory_attention.pool_correction=eq6",
        "--config.data.sources.sav.path=/d/sav",
    ):
        assert want in flags
    assert override_flags({"a.b": True, "c": 0}, None) == ["--config.a.b=true", "--config.c=0"]


def test_bad_input_names_the_problem(tmp_path):
    with pytest.raises(EtamError, match="--data"):
        fill_data("{data}/davis", None)
    with pytest.raises(EtamError, match="unknown point"):
        select_points(load_sweep(SWEEP_FILE, "ci"), "ti_w9_none")
    with pytest.raises(EtamError, match="variant"):
        load_sweep(SWEEP_FILE, "huge")
    bad = tmp_path / "bad.py"
    bad.write_text("x = 1\n")
    with pytest.raises(EtamError, match="get_sweep"):
        load_sweep(bad, "full")
