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
from etam_jax.sweep.training_config import point_model_config
from etam_jax.training.config_loader import load_config

ROOT = Path(__file__).resolve().parents[2]
SWEEP_FILE = ROOT / "experiments" / "sweeps" / "memory_pooling.py"
MODELS = ("efficienttam_ti", "efficienttam_s")


def _triples(sweep):
    return {(p.model, p.window, p.correction) for p in sweep.points}


def test_full_grid_is_windows_times_corrections_times_models():
    sweep = load_sweep(SWEEP_FILE, "full")
    want = {(m, 1, "none") for m in MODELS}
    want |= {(m, w, c) for m in MODELS for w in (2, 4) for c in ("none", "eq5", "eq6")}
    assert _triples(sweep) == want and len(sweep.points) == 14
    assert {p.image_size for p in sweep.points} == {1024}
    names = {p.name for p in sweep.points}
    assert {"ti_w1_none", "ti_w2_eq5", "s_w4_eq6"} <= names and len(names) == 14


def test_local_is_every_ti_point_and_ci_is_two():
    local, ci = load_sweep(SWEEP_FILE, "local"), load_sweep(SWEEP_FILE, "ci")
    full_ti = {t for t in _triples(load_sweep(SWEEP_FILE, "full")) if t[0] == "efficienttam_ti"}
    assert _triples(local) == full_ti and len(local.points) == 7
    assert [p.name for p in ci.points] == ["ti_w1_none", "ti_w2_eq5"]
    for sweep in (local, ci):  # every window divides the feature grid
        assert all((p.image_size // 16) % p.window == 0 for p in sweep.points)


@pytest.mark.parametrize("variant", ["full", "local", "ci"])
def test_etam_train_accepts_every_override_and_eval_builds_the_same_model(variant):
    for point in load_sweep(SWEEP_FILE, variant).points:
        # `etam train`'s own loader: raises on a field the config lacks or a value of another type.
        cfg = load_config(str(ROOT / point.config), override_flags(point.overrides, "/d"))
        assert cfg.model.name == point.model and cfg.model.image_size == point.image_size
        assert cfg.model.memory_attention.pool_window == point.window
        assert cfg.model.memory_attention.pool_correction == point.correction
        assert cfg.data.augment.resolution == point.image_size
        assert cfg.model.to_dict() == point_model_config(point).to_dict()


def test_override_flags_name_the_model_fields():
    point = select_points(load_sweep(SWEEP_FILE, "full"), "s_w2_eq6")[0]
    assert point.config == "experiments/configs/paper.py:stage=sav,model=s"
    flags = override_flags(point.overrides, "/d")
    assert flags == [
        "--config.data.sources.sav.path=/d/sav",
        "--config.data.sources.sa1b.path=/d/sa1b",
        "--config.model.name=efficienttam_s",
        "--config.model.image_size=1024",
        "--config.data.augment.resolution=1024",
        "--config.model.memory_attention.pool_window=2",
        "--config.model.memory_attention.pool_correction=eq6",
    ]
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
