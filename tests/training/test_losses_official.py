"""losses.multistep_losses against SAM 2's own ``MultiStepMultiMasksAndIous``
(sdist sam2==1.1.0, built from SAM 2.1's training yaml), float32, rel err <= 1e-5.

The reference walks a list of frames, each a list of prediction steps holding
``[N, M, H, W]`` logits of the ``N`` objects of the batch; ours is one static grid
with a ``valid`` mask. Each test builds both from the same random arrays.
"""

import jax
import numpy as np
import pytest
import torch

from etam_jax.training import losses
from tests.official_reference import relative_error, to_torch
from tests.official_training_reference import CORE_LOSS_KEY, loss_fns, reference_loss

RTOL = 1e-5


def _arrays(rng, lead, m, size=24):
    """Logits, IoU predictions, object scores and boxes as targets; about a third of
    the targets empty (object absent) and a fifth of the masks copying the target."""
    logits = rng.normal(0, 3, (*lead, m, size, size)).astype(np.float32)
    ious = rng.uniform(0, 1, (*lead, m)).astype(np.float32)
    obj = rng.normal(0, 2, lead).astype(np.float32)
    yy, xx = np.mgrid[:size, :size]
    lo = rng.integers(0, size // 2, (*lead, 2))
    hi = lo + rng.integers(1, size // 2, (*lead, 2))
    targets = (yy >= lo[..., :1, None]) & (yy < hi[..., :1, None])
    targets &= (xx >= lo[..., 1:, None]) & (xx < hi[..., 1:, None])
    targets &= (rng.uniform(size=lead) > 0.33)[..., None, None]
    good = rng.uniform(size=(*lead, m)) < 0.2
    logits = np.where(good[..., None, None], np.where(targets[..., None, :, :], 5.0, -5.0), logits)
    return logits, ious, obj, targets


def _frame_outputs(logits, ious, obj):
    """One frame's reference outputs from per-step arrays ``[N, M, H, W]``, ``[N, M]``, ``[N]``."""
    return {
        "multistep_pred_multimasks_high_res": [to_torch(x) for x in logits],
        "multistep_pred_ious": [to_torch(x) for x in ious],
        "multistep_object_score_logits": [to_torch(x)[:, None] for x in obj],
    }


def _compare(ours, ref):
    total, comps = ours
    for key in losses.LOSS_KEYS:
        np.testing.assert_allclose(float(comps[key]), float(ref[key]), rtol=RTOL, err_msg=key)
    np.testing.assert_allclose(float(total), float(ref[CORE_LOSS_KEY]), rtol=RTOL)


def test_yaml_loss_settings_are_our_defaults():
    ref, cfg = reference_loss(), losses.default_config()
    assert dict(ref.weight_dict) == cfg.weights.to_dict()
    assert (ref.focal_alpha, ref.focal_gamma) == (cfg.focal_alpha, cfg.focal_gamma)
    assert ref.supervise_all_iou == cfg.supervise_all_iou
    assert ref.iou_use_l1_loss == cfg.iou_use_l1_loss
    assert ref.pred_obj_scores  # ours always computes loss_class
    assert ref.focal_alpha_obj_score == cfg.focal_alpha_obj_score
    assert ref.focal_gamma_obj_score == cfg.focal_gamma_obj_score


@pytest.mark.parametrize("m", [3, 1])
def test_frames_and_steps_match_reference(m):
    """T frames x S steps x N objects, every prediction with ``m`` masks."""
    frames, steps, n = 3, 3, 4
    logits, ious, obj, targets = _arrays(np.random.default_rng(m), (frames, steps, n), m)
    target = targets[:, :1]  # the target of a frame is the same for all its steps
    ref = reference_loss()(
        [_frame_outputs(logits[t], ious[t], obj[t]) for t in range(frames)],
        to_torch(target[:, 0]),
    )
    ours = jax.jit(losses.multistep_losses)(
        logits, ious, obj, target, np.ones((frames, steps, n), bool), n
    )
    _compare(ours, ref)
    assert float(ref["loss_mask"]) > 0 and float(ref["loss_class"]) > 0


def test_mixed_mask_counts_and_padding_match_reference():
    """As SAM2Train's outputs: a frame's first step has 3 masks, its correction steps
    1, and frames have different step counts; two clips with 3 and 2 real objects
    (ours pads them to 3 per clip; the reference concatenates its 5 objects)."""
    rng = np.random.default_rng(7)
    clips, frames, steps, n_pad, real = 2, 3, 3, 3, (3, 2)
    first = _arrays(rng, (clips, frames, 1, n_pad), 3)
    later = _arrays(rng, (clips, frames, steps - 1, n_pad), 1)
    target = first[3]  # [clips, frames, 1, objects, H, W]
    steps_of_frame = (3, 1, 2)  # frame 0 has two corrections, frame 2 one
    obj_valid = np.arange(n_pad)[None] < np.array(real)[:, None]  # [clips, objects]

    def rows(a, t, s):  # the real objects of all clips: reference row order
        return np.concatenate([a[c, t, s, : real[c]] for c in range(clips)])

    def step(arrays, t, s):  # (logits, ious, object scores) of one step
        return tuple(rows(a, t, s) for a in arrays[:3])

    outs = []
    for t, s_count in enumerate(steps_of_frame):
        per_step = [step(first, t, 0)] + [step(later, t, s) for s in range(s_count - 1)]
        outs.append(_frame_outputs(*zip(*per_step)))
    ref_targets = np.stack([rows(target, t, 0) for t in range(frames)])
    ref = reference_loss()(outs, to_torch(ref_targets))

    num_objects = obj_valid.sum()
    step_valid = np.arange(steps - 1)[None] < np.array(steps_of_frame)[:, None] - 1
    valid_first = np.broadcast_to(obj_valid[:, None, None], (clips, frames, 1, n_pad))
    valid_later = obj_valid[:, None, None] & step_valid[None, :, :, None]
    f = jax.jit(losses.multistep_losses)
    parts_first = f(*first[:3], target, valid_first, num_objects)[1]
    parts_later = f(*later[:3], target, valid_later, num_objects)[1]
    parts = {k: parts_first[k] + parts_later[k] for k in losses.LOSS_KEYS}
    _compare((losses.weighted_total(parts, losses.default_config().weights), parts), ref)


def test_num_objects_over_ranks_gives_the_global_batch_gradient(monkeypatch):
    """With DDP the reference divides each rank's loss by the objects per rank
    averaged over ranks (``all_reduce`` / ``get_world_size``) and DDP averages the
    gradients: the same gradient as ours on the global batch over the global count."""
    rng = np.random.default_rng(11)
    per_rank = (3, 1)  # objects on rank 0 and rank 1
    arrays = [_arrays(rng, (2, 2, n), 3) for n in per_rank]  # frames, steps, objects
    monkeypatch.setattr(loss_fns, "is_dist_avail_and_initialized", lambda: True)
    monkeypatch.setattr(loss_fns, "get_world_size", lambda: len(per_rank))
    monkeypatch.setattr(
        loss_fns.torch.distributed, "all_reduce", lambda t: t.fill_(float(sum(per_rank)))
    )
    grads, core = [], 0.0
    for logits, ious, obj, targets in arrays:
        x = torch.tensor(logits, requires_grad=True)
        frames = [
            {
                "multistep_pred_multimasks_high_res": list(x[t]),
                "multistep_pred_ious": [to_torch(i) for i in ious[t]],
                "multistep_object_score_logits": [to_torch(o)[:, None] for o in obj[t]],
            }
            for t in range(2)
        ]
        loss = reference_loss()(frames, to_torch(targets[:, 0]))[CORE_LOSS_KEY]
        loss.backward()
        grads.append(x.grad.numpy() / len(per_rank))  # DDP: mean over ranks
        core += float(loss.detach()) / len(per_rank)
    logits, ious, obj, targets = (np.concatenate(a, axis=2) for a in zip(*arrays))
    valid = np.ones(logits.shape[:3], bool)

    def total(x):
        return losses.multistep_losses(x, ious, obj, targets[:, :1], valid, sum(per_rank))[0]

    value, grad = jax.jit(jax.value_and_grad(total))(logits)
    np.testing.assert_allclose(float(value), core, rtol=RTOL)
    want = np.concatenate(grads, axis=2)
    assert relative_error(grad, want) <= 1e-5
