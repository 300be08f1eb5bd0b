"""Interactive prompt simulation for training, inside jit: static shapes, rng-driven.

A port of SAM 2's training-time prompting (facebookresearch/sam2:
``training/model/sam2.py::SAM2Train.prepare_prompt_inputs`` and
``_iter_correct_pt_sampling``; ``sam2/modeling/sam2_utils.py::sample_box_points``,
``sample_random_points_from_errors``): start from the GT mask (p 0.5) or from
points, points being a noisy box (p 0.5) or one click sampled uniformly from the
GT mask; 1-2 initial conditioning frames (frame 0 and a random other); with
points, correction clicks on those frames and possibly one more, sampled from
the error region of the running prediction (or, p 0.1, from the GT); corrected
frames join the conditioning set.

Like the official trainer (one seeded generator, identical on every GPU), the
schedule -- mask or points, box or click, which frames -- is drawn once per
global batch: it is the same for every clip and object, so a train step can
branch on scalars (``lax.cond``) and process frames in one order. Boxes and
clicks are sampled per object from its own mask.

Point layout, ``NP = NUM_INIT_SLOTS + num_correction_pt_per_frame``: slots 0-1
hold the box corners (labels 2, 3) or the click and a padding point (label -1);
correction click ``k`` goes to slot ``NUM_INIT_SLOTS + k``; empty slots are
label -1 at (0, 0). Coordinates are ``(x, y)`` pixel indices of the mask grid.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
from flax import struct
from jaxtyping import Array, Bool, Float, Int

from etam_jax.errors import EtamError
from etam_jax.models import prompt_labels
from etam_jax.training.point_sampling import (
    sample_box_points,
    sample_points_from_errors,
    uniform_noise,
)

NUM_INIT_SLOTS = 2  # a box's two corners, or one click and one padding point
PAD_LABEL = prompt_labels.PAD


def default_config() -> ml_collections.ConfigDict:
    """The ``prompts`` ConfigDict: SAM 2.1's training values (``SAM2Train`` in the yaml)."""
    return ml_collections.ConfigDict(
        {
            "prob_to_use_pt_input": 0.5,  # else the GT mask is the prompt
            "prob_to_use_box_input": 0.5,  # with points: a box, else one click
            "num_init_cond_frames": 2,
            "rand_init_cond_frames": True,  # 1..num_init_cond_frames, uniformly
            "num_frames_to_correct": 2,
            "rand_frames_to_correct": True,  # num_init..num_frames_to_correct, uniformly
            "add_all_frames_to_correct_as_cond": True,
            "num_correction_pt_per_frame": 7,
            "prob_to_sample_from_gt": 0.1,  # a correction click from the GT, not the errors
            "box_noise": 0.1,  # fraction of the box width/height
            "box_noise_bound": 20.0,  # pixels
        }
    )


def validate_config(cfg: ml_collections.ConfigDict) -> None:
    """Raise `EtamError` naming the field when the prompt config cannot work."""
    for name in (
        "prob_to_use_pt_input",
        "prob_to_use_box_input",
        "prob_to_sample_from_gt",
    ):
        if not 0.0 <= cfg[name] <= 1.0:
            raise EtamError(
                f"config prompts.{name}: expected a probability in [0, 1], found {cfg[name]}"
            )
    if cfg.num_init_cond_frames < 1 or cfg.num_correction_pt_per_frame < 0:
        raise EtamError(
            "config prompts: expected num_init_cond_frames >= 1 and "
            "num_correction_pt_per_frame >= 0, found "
            f"{cfg.num_init_cond_frames} and {cfg.num_correction_pt_per_frame}"
        )
    if cfg.num_frames_to_correct < cfg.num_init_cond_frames:  # as SAM2Train's assert
        raise EtamError(
            "config prompts.num_frames_to_correct: expected >= "
            f"num_init_cond_frames ({cfg.num_init_cond_frames}), "
            f"found {cfg.num_frames_to_correct}"
        )


def num_point_slots(cfg: ml_collections.ConfigDict) -> int:
    """``NP``: the initial prompt's slots plus one per correction click."""
    return NUM_INIT_SLOTS + cfg.num_correction_pt_per_frame


@struct.dataclass
class PromptPlan:
    """What to prompt where, for a ``[B, T, O]`` batch of clips.

    Frame flags are shared by the whole batch (see the module docstring).

    Attributes:
        use_mask_input: scalar; the initial conditioning frames get the GT mask.
        use_box: ``[T]``; the initial points on that frame are a box, else a click.
        is_init_cond: ``[T]``; initial conditioning frames (frame 0 always).
        correct: ``[T]``; frames that receive correction clicks.
        is_cond: ``[T]``; conditioning frames once corrections are added.
        order: ``[T]`` int32; processing order: initial conditioning frames, then the rest.
        point_coords: ``[B, T, O, NP, 2]`` float32 ``(x, y)``.
        point_labels: ``[B, T, O, NP]`` int32; -1 padding.
    """

    use_mask_input: Bool[Array, ""]
    use_box: Bool[Array, " t"]
    is_init_cond: Bool[Array, " t"]
    correct: Bool[Array, " t"]
    is_cond: Bool[Array, " t"]
    order: Int[Array, " t"]
    point_coords: Float[Array, "b t o np 2"]
    point_labels: Int[Array, "b t o np"]

    @property
    def mask_prompt(self) -> Bool[Array, " t"]:
        """``[T]``: frames whose prompt is the GT mask."""
        return self.is_init_cond & self.use_mask_input


def _first_ranked(
    scores: Float[Array, " t"], first: Bool[Array, " t"], count: Array
) -> Bool[Array, " t"]:
    """The ``first`` frames plus random others (by ``scores``), ``count`` frames in all."""
    rank = jnp.argsort(jnp.argsort(jnp.where(first, -1.0, scores)))
    return rank < count


def _uniform_int(u: Array, low: Array | int, high: int) -> Array:
    """An integer uniform on ``[low, high]`` from ``u`` uniform on ``[0, 1)``."""
    return jnp.minimum(low + jnp.floor(u * (high - low + 1)).astype(jnp.int32), high)


def _sample_counts(u: Float[Array, " 3"], num_frames: int, cfg: ml_collections.ConfigDict):
    """(use_pt, num_init_cond, num_to_correct), as SAM2Train.prepare_prompt_inputs."""
    if num_frames == 1:  # images: always points, one frame, corrected
        return jnp.array(True), jnp.array(1), jnp.array(1)
    use_pt = u[0] < cfg.prob_to_use_pt_input
    max_init = min(cfg.num_init_cond_frames, num_frames)
    n_init = jnp.array(max_init)
    if cfg.rand_init_cond_frames:
        n_init = _uniform_int(u[1], 1, max_init)
    max_corr = min(cfg.num_frames_to_correct, num_frames)
    n_corr = jnp.array(max_corr)
    if cfg.rand_frames_to_correct:
        n_corr = _uniform_int(u[2], n_init, max_corr)
    return use_pt, n_init, n_corr


def sample_schedule(key: Array, num_frames: int, cfg: ml_collections.ConfigDict) -> PromptPlan:
    """Draw the batch's prompting schedule (`PromptPlan` with empty points, ``B = O = 0``).

    Args:
        key: PRNG key.
        num_frames: ``T`` (static); 1 means images (points, frame 0 corrected).
        cfg: `default_config()` layout; checked by `validate_config` (at trace time).
    """
    validate_config(cfg)
    # One draw for everything: fewer random-number kernels to compile.
    u = uniform_noise(key, (3 + 3 * num_frames,))
    init_u, corr_u, box_u = u[3:].reshape(3, num_frames)
    use_pt, n_init, n_corr = _sample_counts(u[:3], num_frames, cfg)
    is_init = _first_ranked(init_u, jnp.arange(num_frames) == 0, n_init)
    correct = use_pt & _first_ranked(corr_u, is_init, n_corr)
    use_box = use_pt & is_init & (box_u < cfg.prob_to_use_box_input)
    is_cond = is_init | (correct & cfg.add_all_frames_to_correct_as_cond)
    t = jnp.arange(num_frames)
    order = jnp.argsort(jnp.where(is_init, t - num_frames, t)).astype(jnp.int32)
    slots = num_point_slots(cfg)
    return PromptPlan(
        ~use_pt,
        use_box,
        is_init,
        correct,
        is_cond,
        order,
        jnp.zeros((0, num_frames, 0, slots, 2), jnp.float32),
        jnp.zeros((0, num_frames, 0, slots), jnp.int32),
    )


def _initial_points(key, gt_masks, plan, cfg):
    """Slots 0-1 for every ``[B, T, O]``: box or click on point-prompted init frames."""
    k_box, k_click = jax.random.split(key)
    box_xy, box_lab = sample_box_points(k_box, gt_masks, cfg.box_noise, cfg.box_noise_bound)
    click_xy, click_lab = sample_points_from_errors(k_click, gt_masks, None)
    click_xy = jnp.stack([click_xy, jnp.zeros_like(click_xy)], axis=-2)
    click_lab = jnp.stack([click_lab, jnp.full_like(click_lab, PAD_LABEL)], axis=-1)
    use_box = plan.use_box[None, :, None, None]
    coords = jnp.where(use_box[..., None], box_xy, click_xy)
    labels = jnp.where(use_box, box_lab, click_lab)
    prompted = (plan.is_init_cond & ~plan.use_mask_input)[None, :, None, None]
    return jnp.where(prompted[..., None], coords, 0.0), jnp.where(prompted, labels, PAD_LABEL)


def sample_initial_prompts(
    key: Array, gt_masks: Bool[Array, "b t o h w"], cfg: ml_collections.ConfigDict
) -> PromptPlan:
    """The schedule and the initial points of a batch; correction slots left empty.

    Args:
        key: PRNG key.
        gt_masks: ground-truth masks ``[B, T, O, H, W]`` (bool), the grid the
            coordinates refer to (the model's input size).
        cfg: `default_config()` layout.

    Returns:
        `PromptPlan` with ``point_coords [B, T, O, NP, 2]``, ``point_labels [B, T, O, NP]``.
    """
    k_plan, k_pts = jax.random.split(key)
    plan = sample_schedule(k_plan, gt_masks.shape[1], cfg)
    coords, labels = _initial_points(k_pts, gt_masks.astype(bool), plan, cfg)
    extra = cfg.num_correction_pt_per_frame
    coords = jnp.pad(coords, [(0, 0)] * 3 + [(0, extra), (0, 0)])
    labels = jnp.pad(labels, [(0, 0)] * 3 + [(0, extra)], constant_values=PAD_LABEL)
    return plan.replace(point_coords=coords, point_labels=labels)


def sample_correction_click(
    key: Array,
    gt_masks: Bool[Array, "*n h w"],
    pred_logits: Float[Array, "*n h w"],
    prob_from_gt: float,
) -> tuple[Float[Array, "*n 2"], Int[Array, "*n"]]:
    """One correction click per mask from the prediction's errors (or, p ``prob_from_gt``, the GT).

    As _iter_correct_pt_sampling: one draw per call decides GT vs errors for the
    whole batch; the prediction is ``pred_logits > 0``. Returns ``(coords, labels)``
    as `sample_points_from_errors`.
    """
    k_gt, k_pt = jax.random.split(key)
    from_gt = jax.random.uniform(k_gt) < prob_from_gt
    pred = (pred_logits > 0) & ~from_gt
    return sample_points_from_errors(k_pt, gt_masks, pred)


def set_points(
    coords: Float[Array, "*n np 2"],
    labels: Int[Array, "*n np"],
    new_coords: Float[Array, "*n 2"],
    new_labels: Int[Array, "*n"],
    slot: int | Array,
) -> tuple[Float[Array, "*n np 2"], Int[Array, "*n np"]]:
    """Write one point per row into point slot ``slot`` (static or traced)."""
    return (
        coords.at[..., slot, :].set(new_coords.astype(coords.dtype)),
        labels.at[..., slot].set(new_labels.astype(labels.dtype)),
    )


def num_points(labels: Int[Array, "*n np"]) -> Int[Array, "*n"]:
    """Real (non-padding) points per row, e.g. for SAM2Base._use_multimask."""
    return jnp.sum(labels != PAD_LABEL, axis=-1)


Predict = Callable[[Array, Array, Any], tuple[Array, Any, Any]]


def run_correction_rounds(
    key: Array,
    predict: Predict,
    coords: Array,
    labels: Array,
    gt_masks: Array,
    pred_logits: Array,
    carry: Any,
    cfg: ml_collections.ConfigDict,
) -> tuple[Array, Array, Any, Any]:
    """``num_correction_pt_per_frame`` click-and-predict rounds under ``lax.scan``.

    Round ``k`` samples a click from the errors of the latest prediction, writes it to
    slot ``NUM_INIT_SLOTS + k`` and calls ``predict(coords, labels, carry) ->
    (new_logits [*n, H, W], carry, outputs)`` (e.g. the SAM heads, carry holding the
    low-res mask fed back as mask input).

    Args:
        key: PRNG key.
        predict: the model step, traced once.
        coords, labels: ``[*n, NP, 2]`` and ``[*n, NP]`` from `sample_initial_prompts`.
        gt_masks: ``[*n, H, W]``.
        pred_logits: ``[*n, H, W]``, the frame's prediction before corrections.
        carry: any pytree threaded through ``predict``.
        cfg: `default_config()` layout.

    Returns:
        ``(coords, labels, carry, outputs)``; ``outputs`` stacked over the rounds.
    """

    def step(state, xs):
        coords, labels, logits, carry = state
        k, slot = xs
        xy, lab = sample_correction_click(k, gt_masks, logits, cfg.prob_to_sample_from_gt)
        coords, labels = set_points(coords, labels, xy, lab, slot)
        logits, carry, out = predict(coords, labels, carry)
        return (coords, labels, logits, carry), out

    rounds = cfg.num_correction_pt_per_frame
    xs = (jax.random.split(key, rounds), NUM_INIT_SLOTS + jnp.arange(rounds))
    (coords, labels, _, carry), outs = jax.lax.scan(step, (coords, labels, pred_logits, carry), xs)
    return coords, labels, carry, outs
