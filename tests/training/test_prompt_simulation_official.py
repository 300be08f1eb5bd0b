"""Prompt simulation against SAM 2.1's ``SAM2Train`` over thousands of draws.

The reference is ``SAM2Train.prepare_prompt_inputs`` (the prompting plan and the
initial box or click) and ``SAM2Train._iter_correct_pt_sampling`` (correction
clicks) with SAM 2.1's training flags from its yaml; ours is
`prompt_simulation.sample_initial_prompts` and `run_correction_rounds` with our
defaults. Every rate (mask / box / click start, number and choice of
conditioning frames, corrected frames, click labels and regions) and every mean
(box corners, click positions) must agree within 3 standard errors of the
difference. The two sides use different random generators, so only the
distributions can match.
"""

from __future__ import annotations

import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from etam_jax.bench.official_model import official_config
from etam_jax.training import prompt_simulation as ps
from tests.official_training_reference import build_sam2_train, training_config

DRAWS, FRAMES, SIZE = 3000, 4, 32
CLICK_CALLS = 400  # x 7 correction clicks each
SE = 3.0
# SAM2Train's training flags, from SAM 2.1's yaml (every *_for_train and the two shared ones).
FLAG_NAMES = (
    "prob_to_use_pt_input_for_train",
    "prob_to_use_box_input_for_train",
    "prob_to_sample_from_gt_for_train",
    "num_frames_to_correct_for_train",
    "rand_frames_to_correct_for_train",
    "num_init_cond_frames_for_train",
    "rand_init_cond_frames_for_train",
    "add_all_frames_to_correct_as_cond",
    "num_correction_pt_per_frame",
)


def _rect(y0, y1, x0, x1):
    m = np.zeros((SIZE, SIZE), bool)
    m[y0:y1, x0:x1] = True
    return m


GT = _rect(6, 22, 4, 20)  # the object
PRED = _rect(10, 26, 10, 28)  # a prediction to correct: overlaps, misses, spills
MASKS = np.stack([_rect(4 + t, 20 + t, 3 + 2 * t, 18 + 2 * t) for t in range(FRAMES)])


@pytest.fixture(scope="module")
def reference():
    """SAM2Train with SAM 2.1's training flags (a reduced EfficientTAM inside: only
    the prompting code runs), in training mode."""
    yaml = training_config().trainer.model
    model_cfg = official_config("efficienttam_ti_512x512", 64).model
    model_cfg.image_encoder.trunk.depth = 1
    model_cfg.image_encoder.trunk.window_block_indexes = []
    model_cfg.memory_attention.num_layers = 1
    torch.manual_seed(0)
    official = instantiate(model_cfg, _recursive_=True)
    return build_sam2_train(official, model_cfg, **{k: yaml[k] for k in FLAG_NAMES})


def test_our_defaults_are_the_yaml_flags(reference):
    cfg = ps.default_config()
    ours = {
        "prob_to_use_pt_input_for_train": cfg.prob_to_use_pt_input,
        "prob_to_use_box_input_for_train": cfg.prob_to_use_box_input,
        "prob_to_sample_from_gt_for_train": cfg.prob_to_sample_from_gt,
        "num_frames_to_correct_for_train": cfg.num_frames_to_correct,
        "rand_frames_to_correct_for_train": cfg.rand_frames_to_correct,
        "num_init_cond_frames_for_train": cfg.num_init_cond_frames,
        "rand_init_cond_frames_for_train": cfg.rand_init_cond_frames,
        "add_all_frames_to_correct_as_cond": cfg.add_all_frames_to_correct_as_cond,
        "num_correction_pt_per_frame": cfg.num_correction_pt_per_frame,
    }
    assert ours == {k: getattr(reference, k) for k in FLAG_NAMES}


def _reference_plans(model) -> dict[str, np.ndarray]:
    """Per draw: start kind, conditioning and corrected frames, frame 0's points."""
    torch.manual_seed(0)  # the clicks' and boxes' noise (the plan has its own generator)
    inputs = types.SimpleNamespace(masks=torch.from_numpy(MASKS[:, None]), num_frames=FRAMES)
    rows = {k: [] for k in ("mask", "box", "init", "correct", "xy0", "xy1")}
    for _ in range(DRAWS):
        out = model.prepare_prompt_inputs({}, inputs)
        points = out["point_inputs_per_frame"].get(0)
        labels = None if points is None else points["point_labels"][0].tolist()
        rows["mask"].append(not out["use_pt_input"])
        rows["box"].append(labels == [2, 3])
        rows["init"].append(np.isin(np.arange(FRAMES), out["init_cond_frames"]))
        rows["correct"].append(np.isin(np.arange(FRAMES), out["frames_to_add_correction_pt"]))
        xy = np.full((2, 2), np.nan) if points is None else points["point_coords"][0].numpy()
        rows["xy0"].append(xy[0])
        rows["xy1"].append(xy[1] if len(xy) > 1 else np.full(2, np.nan))
    return {k: np.array(v) for k, v in rows.items()}


def _our_plans() -> dict[str, np.ndarray]:
    cfg = ps.default_config()
    keys = jax.random.split(jax.random.key(0), DRAWS)
    masks = jnp.asarray(MASKS[None, :, None])
    plans = jax.jit(jax.vmap(lambda k: ps.sample_initial_prompts(k, masks, cfg)))(keys)
    p = jax.tree.map(np.asarray, plans)
    labels, coords = p.point_labels[:, 0, 0, 0], p.point_coords[:, 0, 0, 0]
    points = ~p.use_mask_input
    box = points & p.use_box[:, 0]
    nan = np.full(2, np.nan)
    return {
        "mask": p.use_mask_input,
        "box": box,
        "init": p.is_init_cond,
        "correct": p.correct,
        "xy0": np.where(points[:, None], coords[:, 0], nan),
        "xy1": np.where(box[:, None], coords[:, 1], nan),
        "labels": labels[:, 0],
    }


def _same_rate(name, ours, ref):
    """Two proportions within SE standard errors of their difference."""
    p1, p2 = np.mean(ours), np.mean(ref)
    pooled = (np.sum(ours) + np.sum(ref)) / (len(ours) + len(ref))
    se = np.sqrt(pooled * (1 - pooled) * (1 / len(ours) + 1 / len(ref)))
    assert abs(p1 - p2) <= SE * se + 1e-12, (
        f"{name}: ours {p1:.4f}, SAM2Train {p2:.4f}, se {se:.4f}"
    )


def _same_mean(name, ours, ref):
    """Two means within SE standard errors of their difference."""
    ours, ref = ours[~np.isnan(ours)], ref[~np.isnan(ref)]
    se = np.sqrt(ours.var() / len(ours) + ref.var() / len(ref))
    assert abs(ours.mean() - ref.mean()) <= SE * se + 1e-9, (
        f"{name}: ours {ours.mean():.3f}, SAM2Train {ref.mean():.3f}, se {se:.3f}"
    )


def test_plans_have_sam2train_statistics(reference):
    ref, ours = _reference_plans(reference), _our_plans()
    _same_rate("mask start", ours["mask"], ref["mask"])
    _same_rate("box start", ours["box"], ref["box"])
    click = lambda d: ~d["mask"] & ~d["box"]
    _same_rate("click start", click(ours), click(ref))
    for side in (ours, ref):
        assert side["init"][:, 0].all()  # frame 0 always conditions
    n_init = lambda d: d["init"].sum(1)
    _same_rate("two conditioning frames", n_init(ours) == 2, n_init(ref) == 2)
    for t in range(1, FRAMES):
        _same_rate(f"frame {t} conditions", ours["init"][:, t], ref["init"][:, t])
    n_corr = lambda d: d["correct"].sum(1)
    for n in range(3):
        _same_rate(f"{n} corrected frames", n_corr(ours) == n, n_corr(ref) == n)
    extra = lambda d: (d["correct"] & ~d["init"]).any(1)
    _same_rate("a corrected frame beyond the conditioning ones", extra(ours), extra(ref))
    box = lambda d, k: np.where(d["box"][:, None], d[k], np.nan)
    not_box = lambda d: np.where((click(d))[:, None], d["xy0"], np.nan)
    ys, xs = np.nonzero(MASKS[0])
    tight = {"xy0": (xs.min(), ys.min()), "xy1": (xs.max(), ys.max())}  # the mask's box
    for axis, name in enumerate("xy"):
        for corner in ("xy0", "xy1"):
            ours_c, ref_c = box(ours, corner)[:, axis], box(ref, corner)[:, axis]
            _same_mean(f"box {corner} {name}", ours_c, ref_c)
            jitter = lambda c: np.abs(c - tight[corner][axis])  # the noise's spread
            _same_mean(f"box {corner} {name} jitter", jitter(ours_c), jitter(ref_c))
        _same_mean(f"click {name}", not_box(ours)[:, axis], not_box(ref)[:, axis])
    clicks = ours["labels"][click(ours)]
    assert (clicks == 1).all()  # a first click is positive, from the object


def _regions(xy: np.ndarray) -> dict[str, np.ndarray]:
    x, y = xy[:, 0].astype(int), xy[:, 1].astype(int)
    gt, pred = GT[y, x], PRED[y, x]
    return {"false negative": gt & ~pred, "false positive": ~gt & pred, "correct": gt & pred}


def _reference_clicks(model) -> tuple[np.ndarray, np.ndarray]:
    """``_iter_correct_pt_sampling``'s 7 clicks on a frame, the prediction held at PRED
    (its SAM heads return that prediction every round), CLICK_CALLS times."""
    logits = torch.from_numpy(np.where(PRED, 5.0, -5.0).astype(np.float32))[None, None]
    outputs = (logits, logits, torch.zeros(1, 1), logits, logits, None, torch.ones(1, 1))
    model._forward_sam_heads = lambda **_: outputs
    gt = torch.from_numpy(GT)[None, None]
    torch.manual_seed(1)
    xy, labels = [], []
    for _ in range(CLICK_CALLS):
        points, _ = model._iter_correct_pt_sampling(
            True, None, gt, None, None, *outputs[:5], outputs[6], {}
        )
        xy.append(points["point_coords"][0].numpy())
        labels.append(points["point_labels"][0].numpy())
    return np.concatenate(xy), np.concatenate(labels)


def _our_clicks() -> tuple[np.ndarray, np.ndarray]:
    cfg = ps.default_config()
    logits = jnp.where(PRED, 5.0, -5.0)[None]
    slots = ps.num_point_slots(cfg)
    empty = jnp.zeros((1, slots, 2)), jnp.full((1, slots), ps.PAD_LABEL, jnp.int32)

    def clicks(key):
        predict = lambda coords, labels, carry: (logits, carry, ())
        coords, labels, _, _ = ps.run_correction_rounds(
            key, predict, *empty, jnp.asarray(GT)[None], logits, (), cfg
        )
        return coords[0, ps.NUM_INIT_SLOTS :], labels[0, ps.NUM_INIT_SLOTS :]

    keys = jax.random.split(jax.random.key(1), CLICK_CALLS)
    xy, labels = jax.jit(jax.vmap(clicks))(keys)
    return np.asarray(xy).reshape(-1, 2), np.asarray(labels).reshape(-1)


def test_correction_clicks_have_sam2train_statistics(reference):
    (ref_xy, ref_labels), (xy, labels) = _reference_clicks(reference), _our_clicks()
    assert (
        len(ref_labels)
        == len(labels)
        == CLICK_CALLS * ps.default_config().num_correction_pt_per_frame
    )
    _same_rate("positive click", labels == 1, ref_labels == 1)
    ours, ref = _regions(xy), _regions(ref_xy)
    for name in ours:
        _same_rate(f"click in the {name} region", ours[name], ref[name])
    # Only clicks drawn from the GT (p 0.1) land where the prediction is right.
    assert 0 < ref["correct"].mean() < 0.1 and 0 < ours["correct"].mean() < 0.1
    for axis, name in enumerate("xy"):
        _same_mean(f"click {name}", xy[:, axis], ref_xy[:, axis])
