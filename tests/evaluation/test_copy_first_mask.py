"""`etam eval --baseline copy-first-mask` against region similarity / boundary F computed
by hand on the ground truth, and on a video whose objects never move (a perfect score)."""

import csv
import json
import shutil

import numpy as np
import pytest

from data_pipelines.synthetic import write_davis
from data_pipelines.vos_reader import read_davis
from etam_jax.cli import main as etam
from etam_jax.evaluation.metrics import boundary_f, region_similarity

FRAMES = 6


def run_baseline(data, out):
    argv = ["eval", "--baseline", "copy-first-mask", "--data", str(data), "--out", str(out)]
    assert etam(argv + ["--no-progress"]) == 0
    return json.loads((out / "summary.json").read_text())


def test_scores_are_the_first_mask_against_every_later_frame(tmp_path):
    write_davis(tmp_path / "davis", num_videos=2, size=(48, 64), num_frames=FRAMES, num_objects=2)
    summary = run_baseline(tmp_path / "davis", tmp_path / "out")
    want = {}
    for video in read_davis(tmp_path / "davis"):
        for o in video.object_ids:
            first = video.mask(o, 0)
            frames = range(1, FRAMES - 1)  # DAVIS: not the first and last frame
            js = [region_similarity(video.mask(o, t), first) for t in frames]
            fs = [boundary_f(video.mask(o, t), first) for t in frames]
            want[video.name, o] = (np.mean(js), np.mean(fs))
    with open(tmp_path / "out" / "per_object.csv") as f:
        rows = list(csv.DictReader(f))
    assert {(r["video"], int(r["object"])) for r in rows} == set(want)
    for r in rows:
        assert (float(r["J"]), float(r["F"])) == pytest.approx(want[r["video"], int(r["object"])])
    js, fs = np.array(list(want.values())).T
    assert summary["J&F"] == pytest.approx((js.mean() + fs.mean()) / 2)
    assert summary["J&F"] < 0.95  # the generated objects move


def test_objects_that_do_not_move_score_one(tmp_path):
    write_davis(tmp_path / "davis", num_videos=1, size=(48, 64), num_frames=FRAMES, num_objects=2)
    for ann in (tmp_path / "davis" / "Annotations" / "480p").iterdir():
        pngs = sorted(ann.glob("*.png"))
        for png in pngs[1:]:
            shutil.copyfile(pngs[0], png)
    summary = run_baseline(tmp_path / "davis", tmp_path / "out")
    assert (summary["J&F"], summary["J"], summary["F"]) == (1.0, 1.0, 1.0)


@pytest.mark.parametrize(
    "argv,match",
    [
        (["--baseline", "copy-first-mask", "--model", "efficienttam_ti"], "--baseline replaces"),
        ([], "--model, --checkpoint (or --baseline)"),
        (["--baseline", "median"], "invalid choice: 'median'"),
    ],
)
def test_baseline_or_model_not_both(tmp_path, capsys, argv, match):
    with pytest.raises(SystemExit):
        etam(["eval", "--data", str(tmp_path), "--out", str(tmp_path / "o"), *argv])
    assert match in capsys.readouterr().err
