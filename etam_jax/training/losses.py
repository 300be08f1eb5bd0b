"""SAM 2's training losses: focal, dice, IoU prediction and object score, static shapes.

A port of ``training/loss_fns.py::MultiStepMultiMasksAndIous`` (facebookresearch/sam2)
with the SAM 2.1 training config (``loss_mask 20, loss_dice 1, loss_iou 1,
loss_class 1, supervise_all_iou, iou_use_l1_loss, pred_obj_scores``, object-score
focal with gamma 0 / no alpha, i.e. plain BCE).

The official loss walks Python lists of frames and of prediction steps (the
initial prediction plus one per correction click). Here every prediction is one
row of a static ``*lead`` grid (e.g. ``[B, T, S, O]``: clips, frames, steps,
objects) with a boolean ``valid`` mask for padded clips, frames, steps and
objects. A row's loss is divided by ``num_objects`` (the number of real objects
in the global batch, as the official ``num_objects`` averaged over GPUs) and the
rows are summed: the official sum over frames and steps.
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp
import ml_collections
from jaxtyping import Array, Bool, Float

from etam_jax.errors import EtamError

LOSS_KEYS = ("loss_mask", "loss_dice", "loss_iou", "loss_class")


def default_config() -> ml_collections.ConfigDict:
    """The ``loss`` ConfigDict, defaults from SAM 2.1's training yaml (``trainer.loss.all``)."""
    return ml_collections.ConfigDict(
        {
            "weights": {
                "loss_mask": 20.0,
                "loss_dice": 1.0,
                "loss_iou": 1.0,
                "loss_class": 1.0,
            },
            "focal_alpha": 0.25,
            "focal_gamma": 2.0,
            "supervise_all_iou": True,  # IoU loss on every multimask output, not only the best
            "iou_use_l1_loss": True,  # L1, else MSE
            "focal_alpha_obj_score": -1.0,  # < 0: no alpha weighting
            "focal_gamma_obj_score": 0.0,  # 0: the object-score loss is plain BCE
        }
    )


def sigmoid_focal(logits: Array, targets: Array, alpha: float, gamma: float) -> Array:
    """Elementwise focal loss (RetinaNet), as loss_fns.sigmoid_focal_loss before reduction.

    Args:
        logits: float, any shape.
        targets: same shape, 0/1.
        alpha: positive-class weight; ``< 0`` disables the alpha weighting.
        gamma: focusing exponent.

    Returns:
        The per-element loss, same shape, float32.
    """
    logits = logits.astype(jnp.float32)
    targets = targets.astype(jnp.float32)
    prob = jax.nn.sigmoid(logits)
    ce = jax.nn.softplus(logits) - logits * targets  # stable BCE-with-logits
    p_t = prob * targets + (1 - prob) * (1 - targets)
    loss = ce if gamma == 0 else ce * (1 - p_t) ** gamma
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return loss


def per_mask_focal(
    logits: Float[Array, "*n h w"], targets: Array, alpha: float, gamma: float
) -> Float[Array, "*n"]:
    """Focal loss averaged over the pixels of each mask (``loss_on_multimask=True``)."""
    return jnp.mean(sigmoid_focal(logits, targets, alpha, gamma), axis=(-2, -1))


def per_mask_dice(logits: Float[Array, "*n h w"], targets: Array) -> Float[Array, "*n"]:
    """Soft dice loss of each mask, +1 smoothing as loss_fns.dice_loss."""
    prob = jax.nn.sigmoid(logits.astype(jnp.float32))
    targets = targets.astype(jnp.float32)
    numerator = 2 * jnp.sum(prob * targets, axis=(-2, -1))
    denominator = jnp.sum(prob, axis=(-2, -1)) + jnp.sum(targets, axis=(-2, -1))
    return 1 - (numerator + 1) / (denominator + 1)


def actual_iou(logits: Float[Array, "*n h w"], targets: Array) -> Float[Array, "*n"]:
    """IoU of the binarised prediction (logit > 0) with the target; union clamped at 1."""
    pred = logits > 0
    gt = targets > 0
    inter = jnp.sum(pred & gt, axis=(-2, -1)).astype(jnp.float32)
    union = jnp.sum(pred | gt, axis=(-2, -1)).astype(jnp.float32)
    return inter / jnp.maximum(union, 1.0)


def _per_row_losses(mask_logits, iou_pred, object_score_logits, targets, cfg):
    """Unnormalised per-row losses, each ``[*lead]``: as ``_update_losses`` per object."""
    targets_m = targets[..., None, :, :]  # broadcast against the M masks
    focal = per_mask_focal(mask_logits, targets_m, cfg.focal_alpha, cfg.focal_gamma)
    dice = per_mask_dice(mask_logits, targets_m)
    iou_err = iou_pred.astype(jnp.float32) - jax.lax.stop_gradient(
        actual_iou(mask_logits, targets_m)
    )
    iou = jnp.abs(iou_err) if cfg.iou_use_l1_loss else iou_err**2
    if mask_logits.shape[-3] > 1:
        # Only the mask with the lowest weighted focal + dice gets the mask losses.
        combo = focal * cfg.weights.loss_mask + dice * cfg.weights.loss_dice
        best = jnp.argmin(combo, axis=-1)[..., None]  # first minimum, as torch.argmin
        focal = jnp.take_along_axis(focal, best, axis=-1)
        dice = jnp.take_along_axis(dice, best, axis=-1)
        iou = (
            jnp.mean(iou, -1, keepdims=True)
            if cfg.supervise_all_iou
            else (jnp.take_along_axis(iou, best, axis=-1))
        )
    present = jnp.any(targets > 0, axis=(-2, -1))
    obj_logits = object_score_logits.reshape(present.shape)
    loss_class = sigmoid_focal(
        obj_logits, present, cfg.focal_alpha_obj_score, cfg.focal_gamma_obj_score
    )
    # Absent objects train only the object score.
    keep = present.astype(jnp.float32)
    return {
        "loss_mask": focal[..., 0] * keep,
        "loss_dice": dice[..., 0] * keep,
        "loss_iou": iou[..., 0] * keep,
        "loss_class": loss_class,
    }


def multistep_losses(
    mask_logits: Float[Array, "*lead m h w"],
    iou_pred: Float[Array, "*lead m"],
    object_score_logits: Float[Array, "*lead"],
    target_masks: Bool[Array, "*lead h w"],
    valid: Bool[Array, "*lead"],
    num_objects: Array | float,
    cfg: ml_collections.ConfigDict | None = None,
) -> tuple[Array, dict[str, Array]]:
    """SAM 2's multi-step, multi-mask loss over a static grid of predictions.

    Args:
        mask_logits: predicted mask logits (high-res, the target's size), ``M`` masks
            per prediction (1, or the multimask outputs).
        iou_pred: predicted IoUs ``[*lead, M]``.
        object_score_logits: object-score logits ``[*lead]`` (or ``[*lead, 1]``).
        target_masks: ground truth, broadcastable to ``[*lead, H, W]`` (e.g. ``[B, T,
            1, O, H, W]`` against ``S`` prediction steps).
        valid: ``[*lead]`` (broadcastable); False rows (padded clip, frame, step or
            object) add nothing.
        num_objects: real objects in the global batch; clamped at 1.
        cfg: `default_config()` layout; None uses the defaults.

    Returns:
        ``(total, components)``: total = sum of weight * component; components are
        the unweighted ``loss_mask`` (focal), ``loss_dice``, ``loss_iou``, ``loss_class``
        scalars, each summed over valid rows and divided by ``num_objects``.
    """
    cfg = default_config() if cfg is None else cfg
    lead = mask_logits.shape[:-3]
    targets = jnp.broadcast_to(target_masks, (*lead, *mask_logits.shape[-2:]))
    rows = _per_row_losses(mask_logits, iou_pred, object_score_logits, targets, cfg)
    weight = jnp.broadcast_to(valid, lead).astype(jnp.float32)
    denom = jnp.maximum(jnp.asarray(num_objects, jnp.float32), 1.0)
    components = {k: jnp.sum(rows[k] * weight) / denom for k in LOSS_KEYS}
    return weighted_total(components, cfg.weights), components


def weighted_total(components: Mapping[str, Array], weights: Mapping[str, float]) -> Array:
    """Sum of ``weights[k] * components[k]`` over the weight keys (zero weights skipped).

    Raises:
        EtamError: a weight names a component that is not computed.
    """
    total = jnp.zeros((), jnp.float32)
    for key, w in weights.items():
        if key not in components:
            raise EtamError(
                f"config loss.weights.{key}: no such loss; expected one of {sorted(components)}"
            )
        if w != 0:
            total = total + w * components[key]
    return total
