"""`etam export`: the StableHLO read back from disk computes what the tracker computes."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from etam_jax.cli import main as etam
from etam_jax.convert.checkpoint_io import save_orbax
from etam_jax.export.stablehlo import ENTRY_POINTS, ExportedTracker, as_dict, flat_params
from etam_jax.models.tracker import FrameFeatures, Tracker
from tests.random_model import random_model

MODEL, SIZE, B = "efficienttam_ti_512x512", 64, 2


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    model = random_model(MODEL, SIZE, apply_postprocessing=True)  # as load_video_model
    save_orbax(model, MODEL, root / "ckpt")
    argv = ["export", "--model", MODEL, "--checkpoint", str(root / "ckpt"), "--out",
            str(root / "out"), "--num-objects", str(B), "--image-size", str(SIZE)]  # fmt: skip
    assert etam(argv) == 0
    return root, model


def test_files_and_signatures(case):
    root, model = case
    out = root / "out"
    assert sorted(os.listdir(out)) == sorted(
        [f"{n}.stablehlo" for n in ENTRY_POINTS] + ["params.npz", "signatures.json"]
    )
    sig = json.loads((out / "signatures.json").read_text())
    assert sig["model"] == MODEL and sig["image_size"] == SIZE and sig["num_objects"] == B
    params = flat_params(nnx.state(model))
    with np.load(out / "params.npz") as npz:  # the weights, bitwise
        assert sorted(npz.files) == sorted(params)
        for name, value in params.items():
            np.testing.assert_array_equal(npz[name], np.asarray(value))
    assert [p["name"] for p in sig["params"]] == sorted(params)
    exported = ExportedTracker.load(str(out))
    for name, fn in exported.functions.items():  # the json describes the real programs
        described = sig["params"] + sig["functions"][name]["inputs"]
        assert [(d["shape"], d["dtype"]) for d in described] == [
            (list(a.shape), str(a.dtype)) for a in fn.in_avals
        ]
        assert [(d["shape"], d["dtype"]) for d in sig["functions"][name]["outputs"]] == [
            (list(a.shape), str(a.dtype)) for a in fn.out_avals
        ]
    enc = sig["functions"]["encode_image"]
    assert enc["inputs"] == [{"name": "image", "shape": [1, SIZE, SIZE, 3], "dtype": "float32"}]
    g = SIZE // 16
    assert {o["name"]: o["shape"] for o in enc["outputs"]} == {
        "features": [1, g, g, 256],
        "pos": [1, g, g, 256],
    }


def assert_same(got, want, what):
    """Bitwise: the deserialized program is the tracker's own HLO, compiled by the same XLA."""
    got, want = jax.tree.leaves(got), jax.tree.leaves(want)
    assert len(got) == len(want), what
    for g, w in zip(got, want):
        assert g.dtype == w.dtype, what
        np.testing.assert_array_equal(np.asarray(g), np.asarray(w), err_msg=what)


def test_deserialized_pipeline_matches_tracker(case):
    """encode -> prompt each object -> commit -> propagate 2 frames, from disk vs the Tracker."""
    root, model = case
    ex = ExportedTracker.load(str(root / "out"))
    tracker, params = Tracker(model, num_objects=B), nnx.state(model)
    rng = np.random.default_rng(1)
    images = rng.standard_normal((3, 1, SIZE, SIZE, 3)).astype(np.float32)
    feats = [as_dict(tracker.encode_frame(params, jnp.asarray(im))) for im in images]
    for im, want in zip(images, feats):
        assert_same(ex.call("encode_image", {"image": im}), want, "encode_image")
    clicks = [(np.array([[[20.0, 30.0]]], np.float32), np.array([[1]], np.int32)),
              (np.array([[[50.0, 9.0]]], np.float32), np.array([[0]], np.int32))]  # fmt: skip
    frame0 = FrameFeatures(**feats[0])
    outs = []
    for coords, labels in clicks:
        want = tracker.prompt(params, tracker.empty_bank(1), frame0, 0, 3, False,
                              points=(coords, labels), is_init_cond=True)  # fmt: skip
        got = ex.call("prompt_points", dict(**feats[0], point_coords=coords, point_labels=labels))
        assert_same(got, as_dict(want), "prompt_points")
        outs.append(want)
    low = jnp.concatenate([o.low_res_masks for o in outs])
    ptr = jnp.concatenate([o.obj_ptr for o in outs])
    yes = jnp.ones((B,), bool)
    bank = tracker.commit(params, tracker.empty_bank(), frame0, 0, low, ptr, yes, yes)
    x = dict(bank=as_dict(tracker.empty_bank()), **feats[0], frame_idx=0, low_res_masks=low,
             obj_ptr=ptr, is_cond=yes, write=yes)  # fmt: skip
    got = ex.call("commit", x)
    assert_same(got["bank"], as_dict(bank), "commit")
    for t in (1, 2):
        active = jnp.array([True, t == 1])
        x = dict(bank=as_dict(bank), **feats[t], frame_idx=t, num_frames=3, reverse=False,
                 active=active)  # fmt: skip
        bank, out = tracker.propagate(params, bank, FrameFeatures(**feats[t]), t, 3, False, active)
        got = ex.call("propagate", x)
        assert_same(got["bank"], as_dict(bank), f"propagate bank, frame {t}")
        assert_same(got["outputs"], as_dict(out), f"propagate outputs, frame {t}")
    assert bool(np.asarray(bank.recent_valid)[0].any())  # memories were really written


def bad(tmp_path, capsys, match, **kw):
    args = {"model": MODEL, "checkpoint": str(tmp_path), "out": str(tmp_path / "out"), **kw}
    argv = ["export"] + [x for k, v in args.items() for x in (f"--{k.replace('_', '-')}", v)]
    assert etam(argv) != 0
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("etam export: error: ") and match in err, err
    assert not (tmp_path / "out").exists()


def test_bad_input(tmp_path, capsys):
    bad(tmp_path, capsys, "unknown model 'efficienttam_xl'", model="efficienttam_xl")
    bad(tmp_path, capsys, "nope.pt: no such file", checkpoint=str(tmp_path / "nope.pt"))
    bad(tmp_path, capsys, "--num-objects must be at least 1, got 0", num_objects="0")
    bad(tmp_path, capsys, "--platforms: unknown ['gpu']", platforms="cpu,gpu")
    bad(tmp_path, capsys, "image_size 70 is not a multiple of 16", image_size="70")
