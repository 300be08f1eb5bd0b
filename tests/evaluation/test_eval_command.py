"""`etam eval` end to end on a generated DAVIS folder with a tiny random-weight model:
score files agree with the metrics applied to the written masks, overlays, the
in-memory API the training loop uses, and bad input."""

import csv
import json

import av
import jax
import numpy as np
import pytest
from flax import nnx

from data_pipelines.synthetic import write_davis
from data_pipelines.vos_reader import read_davis
from etam_jax.cli import main as etam
from etam_jax.convert.checkpoint_io import save_orbax
from etam_jax.evaluation.metrics import boundary_f, region_similarity
from etam_jax.evaluation.outputs import read_masks
from etam_jax.evaluation.vos_eval import VOSEvaluator
from etam_jax.models.build import abstract_model

MODEL, SIZE, FRAMES = "efficienttam_ti_512x512", 64, 5


def random_model(seed, scale=0.05):
    """Random weights without eager initialisation (which compiles per shape, slowly)."""
    graphdef, state = nnx.split(abstract_model(MODEL, image_size=SIZE))
    rng = np.random.default_rng(seed)
    state = jax.tree.map(lambda x: (scale * rng.standard_normal(x.shape)).astype(x.dtype), state)
    return nnx.merge(graphdef, state)


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    write_davis(root / "davis", num_videos=2, size=(48, 64), num_frames=FRAMES, num_objects=2)
    model = random_model(0)
    save_orbax(model, MODEL, root / "ckpt")
    out = root / "out"
    argv = [
        "eval",
        "--model",
        MODEL,
        "--checkpoint",
        str(root / "ckpt"),
        "--data",
        str(root / "davis"),
        "--out",
        str(out),
        "--vis",
        "1",
        "--image-size",
        str(SIZE),
    ]
    assert etam(argv) == 0
    return root, model, out


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_scores_match_the_written_masks(case):
    root, _, out = case
    per_object = {}
    for video in read_davis(root / "davis"):
        for o in video.object_ids:
            frames = range(1, FRAMES - 1)  # DAVIS: not the first and last frame
            pairs = [(video.mask(o, t), read_masks(out, video, t)[o]) for t in frames]
            per_object[video.name, o] = (
                np.mean([region_similarity(g, p) for g, p in pairs]),
                np.mean([boundary_f(g, p) for g, p in pairs]),
            )
    rows = read_csv(out / "per_object.csv")
    assert {(r["video"], int(r["object"])) for r in rows} == set(per_object)
    for r in rows:
        j, f = per_object[r["video"], int(r["object"])]
        assert (float(r["J"]), float(r["F"]), float(r["J&F"])) == pytest.approx((j, f, (j + f) / 2))
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary) == {"J&F", "J", "F", "videos", "objects"}
    js, fs = np.array(list(per_object.values())).T
    assert (summary["J"], summary["F"]) == pytest.approx((js.mean(), fs.mean()))
    assert summary["J&F"] == pytest.approx((js.mean() + fs.mean()) / 2)
    assert (summary["videos"], summary["objects"]) == (2, len(per_object))
    for r in read_csv(out / "per_video.csv"):
        mine = [v for (name, _), v in per_object.items() if name == r["video"]]
        assert float(r["J"]) == pytest.approx(np.mean([j for j, _ in mine]))


def test_vis_has_the_worst_video(case):
    _, _, out = case
    worst = min(read_csv(out / "per_video.csv"), key=lambda r: (float(r["J&F"]), r["video"]))[
        "video"
    ]
    assert sorted(p.name for p in (out / "vis").iterdir()) == [worst, f"{worst}.mp4"]
    assert len(list((out / "vis" / worst).glob("*.png"))) == FRAMES
    with av.open(str(out / "vis" / f"{worst}.mp4")) as container:
        assert sum(1 for _ in container.decode(video=0)) == FRAMES


def test_in_memory_model_as_the_training_loop(case):
    """Same scores as the CLI from the in-memory model; `update` swaps weights
    (also a Param-only state, as TrainState.params) without touching the caller's model."""
    root, model, out = case
    before = np.asarray(model.no_mem_embed[...]).copy()
    evaluator = VOSEvaluator(model)
    summary = evaluator(root / "davis", progress=False)
    assert summary == pytest.approx(json.loads((out / "summary.json").read_text()))
    evaluator.update(nnx.state(random_model(1), nnx.Param))
    other = evaluator(root / "davis", progress=False)
    assert other["videos"] == 2 and other != pytest.approx(summary)
    np.testing.assert_array_equal(np.asarray(model.no_mem_embed[...]), before)
    evaluator.update(model)
    assert evaluator(root / "davis", progress=False) == pytest.approx(summary)


def bad(argv, capsys, match):
    assert etam(["eval", "--model", MODEL, "--image-size", str(SIZE)] + argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("etam eval: error: ") and match in err[0], err


def test_bad_input(case, tmp_path, capsys):
    root, _, out = case
    ok = ["--checkpoint", str(root / "ckpt"), "--out", str(tmp_path / "o")]
    bad(ok + ["--data", str(tmp_path / "nope")], capsys, f"{tmp_path / 'nope'}: no such folder")
    (tmp_path / "other").mkdir()
    bad(ok + ["--data", str(tmp_path / "other")], capsys, f"{tmp_path / 'other'}: neither a DAVIS")
    (tmp_path / "noann" / "JPEGImages" / "480p" / "v").mkdir(parents=True)
    bad(
        ok + ["--data", str(tmp_path / "noann")],
        capsys,
        str(tmp_path / "noann" / "Annotations" / "480p" / "v"),
    )
    davis = ["--data", str(root / "davis")]
    bad(davis + ["--checkpoint", str(root / "ckpt"), "--out", str(out)], capsys, "already exists")
    bad(
        davis + ["--checkpoint", str(tmp_path / "w.pt"), "--out", str(tmp_path / "o")],
        capsys,
        "w.pt",
    )
    assert not (tmp_path / "o").exists()
