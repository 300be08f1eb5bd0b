"""The experiment configs as `etam train` loads them: the paper's recipe file and its arguments."""

from pathlib import Path

import pytest

from etam_jax.errors import EtamError
from etam_jax.training.config_loader import load_config
from etam_jax.training.train_step import run_optimizer_config

CONFIGS = Path(__file__).resolve().parents[2] / "experiments" / "configs"
PAPER = str(CONFIGS / "paper.py")


@pytest.mark.parametrize(
    "arg,model,stage,steps",
    [
        ("", "efficienttam_ti", "sav", 300_000),
        ("stage=sa1b,model=ti", "efficienttam_ti", "sa1b", 90_000),
        ("model=s,stage=sa1b", "efficienttam_s", "sa1b", 90_000),
        ("stage=sav,model=s", "efficienttam_s", "sav", 300_000),
    ],
)
def test_paper_recipes(arg, model, stage, steps):
    cfg = load_config(f"{PAPER}:{arg}" if arg else PAPER, [])
    assert cfg.name == f"{stage}_{model}" and cfg.model.name == model
    assert cfg.train.total_steps == steps
    assert sorted(cfg.data.sources) == {"sa1b": ["sa1b"], "sav": ["sa1b", "sav"]}[stage]
    assert cfg.optimizer.schedule == {"sa1b": "rsqrt", "sav": "cosine"}[stage]
    # The schedule's length is the run's, also when the run's length is overridden.
    assert run_optimizer_config(cfg).total_steps == steps
    shorter = load_config(f"{PAPER}:{arg}", ["--config.train.total_steps=1000"])
    assert run_optimizer_config(shorter).total_steps == 1000
    fixed = ["--config.train.total_steps=1000", "--config.optimizer.total_steps=5000"]
    assert run_optimizer_config(load_config(f"{PAPER}:{arg}", fixed)).total_steps == 5000


@pytest.mark.parametrize(
    "arg,message",
    [
        ("stage=sa2", r"paper.py: stage='sa2'; expected one of sa1b, sav"),
        ("model=b", r"paper.py: model='b'; expected one of ti, s"),
        ("size=s", r"paper.py: bad argument 'size=s'; expected stage=sa1b\|sav,model=ti\|s"),
        ("sav", r"paper.py: bad argument 'sav'"),
    ],
)
def test_bad_paper_arguments_fail_naming_them(arg, message):
    with pytest.raises(EtamError, match=message):
        load_config(f"{PAPER}:{arg}", [])


@pytest.mark.parametrize("name", ["paper.py", "demo.py", "tiny.py"])
def test_every_training_config_has_a_schedule_of_its_run(name):
    cfg = load_config(str(CONFIGS / name), [])
    assert run_optimizer_config(cfg).total_steps == cfg.train.total_steps > 0


def test_the_training_configs_are_the_files_of_the_folder():
    helpers = {"__init__.py", "base.py", "data_defaults.py"}
    assert {p.name for p in CONFIGS.glob("*.py")} - helpers == {"paper.py", "demo.py", "tiny.py"}


@pytest.mark.parametrize(
    "patch, size, message",
    [(12, 96, "power of 2"), (2, 64, "power of 2"), (8, 68, "not a multiple of")],
)
def test_a_patch_size_the_heads_cannot_follow_fails_naming_it(patch, size, message):
    from etam_jax.models.configs import feature_grid, get_model_config

    cfg = get_model_config("efficienttam_ti", 64)
    cfg.image_size, cfg.image_encoder.trunk.patch_size = size, patch
    with pytest.raises(EtamError, match=message):
        feature_grid(cfg)
