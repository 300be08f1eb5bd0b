"""A config's own generated data (``data.generated``, the demo's): written once under the
workdir in the real formats, used where no path is given, never over a given path."""

import pytest

from data_pipelines.sources import open_source
from data_pipelines.synthetic import write_all
from data_pipelines.vos_reader import read_davis
from etam_jax.cli import main as etam
from etam_jax.errors import EtamError
from etam_jax.training.config_loader import load_config
from etam_jax.training.generated_data import fill_generated_paths, missing_paths

DEMO = "experiments/configs/demo.py"
SMALL = [
    "--config.data.generated.train.count=2",
    "--config.data.generated.val.count=1",
    "--config.data.generated.val.motion=2.0",
]


def test_missing_paths_are_generated_once_in_the_real_formats(tmp_path):
    cfg = load_config(DEMO, SMALL)
    want = {"data.sources.sav.path", "data.sources.sa1b.path", "eval.data"}
    assert set(missing_paths(cfg)) == want
    fill_generated_paths(cfg, str(tmp_path), num_processes=1)
    root = tmp_path / "generated_data"
    assert cfg.data.sources.sav.path == str(root / "train" / "sav")
    assert cfg.data.sources.sa1b.path == str(root / "train" / "sa1b")
    assert cfg.eval.data == str(root / "val" / "davis")
    assert len(open_source(cfg.data.sources.sav.path)) == 2
    assert len(open_source(cfg.data.sources.sa1b.path)) == 2
    assert len(read_davis(cfg.eval.data)) == 1
    assert missing_paths(cfg) == []
    # Every field of the recipe (object_scale, motion...) reaches the writer: the same
    # files as `etam data synth` with those flags.
    r = cfg.data.generated.val
    direct = tmp_path / "direct"
    write_all(direct, ["davis"], r.seed, None, r.count, None, r.object_scale, r.motion)
    files = sorted(p.relative_to(direct) for p in direct.rglob("*.png"))
    assert files and r.motion == 2.0
    for f in files:
        assert (direct / f).read_bytes() == (root / "val" / f).read_bytes(), f
    stamp = (root / "train" / ".complete").stat().st_mtime_ns
    again = load_config(DEMO, SMALL)
    fill_generated_paths(again, str(tmp_path), num_processes=1)  # a resumed run
    assert (root / "train" / ".complete").stat().st_mtime_ns == stamp
    assert again.data.sources.sav.path == cfg.data.sources.sav.path


def test_given_paths_win_and_configs_without_a_recipe_are_untouched(tmp_path):
    cfg = load_config(DEMO, [*SMALL, "--config.data.sources.sav.path=/data/sav"])
    assert set(missing_paths(cfg)) == {"data.sources.sa1b.path", "eval.data"}
    fill_generated_paths(cfg, str(tmp_path), num_processes=1)
    assert cfg.data.sources.sav.path == "/data/sav"
    tiny = load_config("experiments/configs/tiny.py", [])
    assert missing_paths(tiny) == []  # no recipe: the missing path stays an error of its own
    fill_generated_paths(tiny, str(tmp_path / "t"), num_processes=1)
    assert not (tmp_path / "t").exists()


@pytest.mark.parametrize("workdir,processes", [("gs://bucket/run", 1), ("LOCAL", 2)])
def test_generation_is_single_process_and_local(tmp_path, workdir, processes):
    workdir = str(tmp_path) if workdir == "LOCAL" else workdir
    with pytest.raises(
        EtamError, match=r"--config.data.sources.sav.path=DIR, .*--config.eval.data=DIR"
    ):
        fill_generated_paths(load_config(DEMO, []), workdir, processes)


def test_etam_train_fills_paths_before_training(capsys):
    assert etam(["train", "--config", DEMO, "--workdir", "gs://bucket/run"]) != 0
    assert "generates its data only in a single local process" in capsys.readouterr().err
