"""`etam convert`: bitwise round trip through Orbax, strict load into the official model, bad input."""

from pathlib import Path

import numpy as np
import pytest
import torch

from etam_jax import cli
from etam_jax.convert.checkpoint_io import load_model
from etam_jax.convert.naming import to_torch_arrays
from tests.official_reference import build_official

MODEL = "efficienttam_ti"


@pytest.fixture(scope="module")
def official_pt(tmp_path_factory) -> tuple[Path, dict[str, torch.Tensor]]:
    state_dict = build_official(MODEL, seed=3).state_dict()
    path = tmp_path_factory.mktemp("pt") / "official.pt"
    torch.save({"model": state_dict}, path)
    return path, state_dict


def _convert(*args) -> int:
    return cli.main(["convert", *map(str, args)])


def test_round_trip_is_bitwise_and_loads_strictly(official_pt, tmp_path):
    pt, state_dict = official_pt
    assert _convert("from-pytorch", "--model", MODEL, pt, tmp_path / "orbax") == 0
    assert _convert("to-pytorch", "--model", MODEL, tmp_path / "orbax", tmp_path / "back.pt") == 0
    back = torch.load(tmp_path / "back.pt", weights_only=True)["model"]
    assert sorted(back) == sorted(state_dict)
    for key, value in state_dict.items():
        assert back[key].dtype == value.dtype and torch.equal(back[key], value), key
    fresh = build_official(MODEL, seed=99)
    fresh.load_state_dict(back, strict=True)
    assert torch.equal(fresh.state_dict()["no_mem_embed"], state_dict["no_mem_embed"])


def test_pt_and_orbax_checkpoints_load_the_same_weights(official_pt, tmp_path):
    pt, state_dict = official_pt
    assert _convert("from-pytorch", "--model", MODEL, pt, tmp_path / "orbax") == 0
    from_pt = to_torch_arrays(load_model(MODEL, pt))
    from_dir = to_torch_arrays(load_model(MODEL, tmp_path / "orbax"))
    for key, value in state_dict.items():
        np.testing.assert_array_equal(from_pt[key], value.numpy())
        np.testing.assert_array_equal(from_dir[key], value.numpy())


def _corrupt(state_dict, edit) -> dict:
    corrupted = dict(state_dict)
    edit(corrupted)
    return corrupted


@pytest.mark.parametrize(
    "edit,expected",
    [
        (lambda sd: sd.pop("no_obj_ptr"), ["missing key 'no_obj_ptr'", "[1, 256]"]),
        (
            lambda sd: sd.__setitem__("extra.weight", torch.zeros(2, 3)),
            ["unexpected key 'extra.weight'", "[2, 3]"],
        ),
        (
            lambda sd: sd.__setitem__("obj_ptr_proj.layers.0.bias", torch.zeros(255)),
            ["'obj_ptr_proj.layers.0.bias'", "[255]", "expected [256]"],
        ),
    ],
    ids=["missing", "unexpected", "shape"],
)
def test_bad_state_dict_names_key_and_writes_nothing(official_pt, tmp_path, capsys, edit, expected):
    bad = tmp_path / "bad.pt"
    torch.save({"model": _corrupt(official_pt[1], edit)}, bad)
    assert _convert("from-pytorch", "--model", MODEL, bad, tmp_path / "out") != 0
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    for text in expected:
        assert text in err
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["bad.pt"]


def test_other_bad_inputs(official_pt, tmp_path, capsys):
    no_model = tmp_path / "no_model.pt"
    torch.save({"state": {}}, no_model)
    assert _convert("from-pytorch", "--model", MODEL, no_model, tmp_path / "a") != 0
    assert "no 'model' entry" in capsys.readouterr().err
    assert (
        _convert("from-pytorch", "--model", "efficienttam_xl", official_pt[0], tmp_path / "b") != 0
    )
    assert "unknown model 'efficienttam_xl'" in capsys.readouterr().err
    assert _convert("from-pytorch", "--model", MODEL, official_pt[0], tmp_path / "ok") == 0
    assert (
        _convert("to-pytorch", "--model", "efficienttam_s", tmp_path / "ok", tmp_path / "s.pt") != 0
    )
    err = capsys.readouterr().err
    assert "'efficienttam_ti'" in err and "'efficienttam_s'" in err
    assert not (tmp_path / "s.pt").exists()
    assert _convert("from-pytorch", "--model", MODEL, official_pt[0], tmp_path / "ok") != 0
    assert "already exists" in capsys.readouterr().err
