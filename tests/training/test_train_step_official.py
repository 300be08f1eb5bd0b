"""The training forward and backward against SAM 2's own ``SAM2Train`` (sdist ``sam2==1.1.0``).

The reference is SAM 2.1's ``SAM2Train`` around EfficientTAM's image encoder,
memory attention and memory encoder, every flag from EfficientTAM's yaml
(`official_training_reference.build_sam2_train`), and its loss is
``MultiStepMultiMasksAndIous`` from SAM 2.1's training yaml. Both sides get
the same randomised weights (every tensor perturbed, zero-initialised ones
included), the same clip batch (two clips of three frames, two objects each)
and the same prompts: the reference draws its prompting plan (mask or points,
box or click, conditioning and corrected frames) and our `clip_loss` is given
that plan; correction clicks, random on both sides, are replaced on both by
one deterministic rule (the error pixel of highest fixed score). The loss must
match to 1e-4 and every parameter's gradient to 1e-3 (max|a-b| / max|b|).

The model is efficienttam_ti_512x512 reduced as `tiny_model` (64 px, 2 ViT
blocks, 1 memory-attention layer) with the memory attention's dropout off on
both sides; SAM2Train runs in training mode (sigmoid memories, every
conditioning pointer read).
"""

from __future__ import annotations

import contextlib
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import sam2_training_ref.sam2.modeling.position_encoding as position_encoding
import sam2_training_ref.training.model.sam2 as sam2_train_module
import torch
from flax import nnx
from hydra.utils import instantiate

from etam_jax.bench.official_model import copy_weights, official_config, randomize_
from etam_jax.models.build import build_model
from etam_jax.models.image_normalization import IMAGENET_MEAN, IMAGENET_STD
from etam_jax.training import prompt_simulation as ps
from etam_jax.training.clip_forward import clip_loss
from tests import fast_compile
from tests.official_training_reference import (
    CORE_LOSS_KEY,
    build_sam2_train,
    flat_state,
    reference_loss,
    torch_names,
    training_config,
)
from tests.training import tiny_model

NAME, S, B, O = "efficienttam_ti_512x512", tiny_model.SIZE, 2, 2
LOSS_RTOL, GRAD_RTOL = 1e-4, 1e-3
YAML_MODEL = training_config().trainer.model  # SAM 2.1's training flags
# Fixed distinct pixel scores: a correction click is the error pixel of highest score.
SCORES = np.random.default_rng(7).permutation(S * S).astype(np.float32).reshape(S, S)

# name: (frames, SAM2Train's training flags, correction clicks per frame)
CASES = {
    "mask_two_cond_frames": (
        3,
        dict(prob_to_use_pt_input_for_train=0.0, num_init_cond_frames_for_train=2),
        0,
    ),
    "click_and_corrections": (
        3,
        dict(
            prob_to_use_pt_input_for_train=1.0,
            prob_to_use_box_input_for_train=0.0,
            num_frames_to_correct_for_train=2,
        ),
        2,
    ),
    "box_two_cond_frames_all_corrected": (
        3,
        dict(
            prob_to_use_pt_input_for_train=1.0,
            prob_to_use_box_input_for_train=1.0,
            num_init_cond_frames_for_train=2,
            num_frames_to_correct_for_train=3,
        ),
        1,
    ),
    "image_click_and_corrections": (
        1,
        dict(prob_to_use_pt_input_for_train=1.0, prob_to_use_box_input_for_train=0.0),
        2,
    ),
}


def _official_cfg():
    """The yaml model node reduced as `tiny_model.model_config`, dropout off."""
    model = official_config(NAME, S).model
    model.image_encoder.trunk.depth = 2
    model.image_encoder.trunk.window_block_indexes = [0]
    model.memory_attention.num_layers = 1
    layer = model.memory_attention.layer
    layer.dropout = layer.self_attention.dropout = layer.cross_attention.dropout = 0.0
    return model


def _batch(frames: int) -> dict[str, np.ndarray]:
    """Rectangles that move and change size; one object leaves the last frame."""
    rng = np.random.default_rng(frames)
    masks = np.zeros((B, frames, O, S, S), bool)
    for b, t, o in np.ndindex(B, frames, O):
        y0, x0 = rng.integers(2, S // 2, 2)
        h, w = rng.integers(8, S // 2, 2)
        masks[b, t, o, y0 : y0 + h, x0 : x0 + w] = True
    if frames > 1:
        masks[1, -1, 0] = False
    return {
        "frames": rng.integers(0, 256, (B, frames, S, S, 3), dtype=np.uint8),
        "masks": masks,
        "obj_valid": np.ones((B, O), bool),
        "frame_valid": np.ones((B, frames), bool),
    }


def _official_input(batch: dict[str, np.ndarray]) -> types.SimpleNamespace:
    """What SAM2Train.forward reads of a BatchedVideoDatapoint: images video-major,
    masks ``[T, B * O]``, and each object's image index."""
    frames = batch["frames"].shape[1]
    x = (batch["frames"].astype(np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    images = torch.from_numpy(x.reshape(B * frames, S, S, 3).transpose(0, 3, 1, 2).copy())
    images = images.to(torch.get_default_dtype())
    masks = batch["masks"].transpose(1, 0, 2, 3, 4).reshape(frames, B * O, S, S)
    video_of_row = np.repeat(np.arange(B), O)
    img_idx = video_of_row[None, :] * frames + np.arange(frames)[:, None]
    return types.SimpleNamespace(
        flat_img_batch=images,
        masks=torch.from_numpy(masks.copy()),
        flat_obj_to_img_idx=torch.from_numpy(img_idx),
        num_frames=frames,
    )


def _torch_click(gt_masks, pred_masks, method):
    """The deterministic click, SAM2Train side (``get_next_point``'s signature)."""
    del method
    gt = gt_masks[:, 0].numpy()
    pred = np.zeros_like(gt) if pred_masks is None else pred_masks[:, 0].numpy()
    fn = gt & ~pred
    all_correct = np.all(gt == pred, axis=(1, 2), keepdims=True)
    region = (~gt & pred) | fn | (all_correct & ~gt)
    idx = np.where(region, SCORES, -1.0).reshape(len(gt), -1).argmax(-1)
    labels = fn.reshape(len(gt), -1)[np.arange(len(gt)), idx]
    points = np.stack([idx % S, idx // S], -1).astype(np.float32)
    return torch.from_numpy(points[:, None]), torch.from_numpy(labels[:, None].astype(np.int32))


def _jax_click(key, gt_masks, pred_logits, prob_from_gt):
    """The same rule on our side (`prompt_simulation.sample_correction_click`'s signature)."""
    del key, prob_from_gt
    gt, pred = gt_masks.astype(bool), pred_logits > 0
    fn = gt & ~pred
    all_correct = jnp.all(gt == pred, axis=(-2, -1), keepdims=True)
    region = (~gt & pred) | fn | (all_correct & ~gt)
    flat = jnp.where(region, SCORES, -1.0).reshape(*gt.shape[:-2], S * S)
    idx = jnp.argmax(flat, axis=-1)
    labels = jnp.take_along_axis(fn.reshape(flat.shape), idx[..., None], -1)[..., 0]
    return jnp.stack([idx % S, idx // S], -1).astype(jnp.float32), labels.astype(jnp.int32)


def _our_plan(drawn: dict, frames: int, slots: int) -> ps.PromptPlan:
    """SAM2Train's drawn plan (``prepare_prompt_inputs``' output) in our layout."""
    init = np.isin(np.arange(frames), drawn["init_cond_frames"])
    correct = np.isin(np.arange(frames), drawn["frames_to_add_correction_pt"])
    coords = np.zeros((B, frames, O, slots, 2), np.float32)
    labels = np.full((B, frames, O, slots), ps.PAD_LABEL, np.int32)
    for t, points in drawn["point_inputs_per_frame"].items():
        xy, lab = points["point_coords"].numpy(), points["point_labels"].numpy()
        k = xy.shape[1]
        coords[:, t, :, :k] = xy.reshape(B, O, k, 2)
        labels[:, t, :, :k] = lab.reshape(B, O, k)
    return ps.PromptPlan(
        use_mask_input=np.array(not drawn["use_pt_input"]),
        use_box=labels[0, :, 0, 0] == 2,
        is_init_cond=init,
        correct=correct,
        is_cond=init | correct,  # add_all_frames_to_correct_as_cond, both sides
        order=np.array(drawn["init_cond_frames"] + drawn["frames_not_in_init_cond"], np.int32),
        point_coords=coords,
        point_labels=labels,
    )


def _reference(official, model_cfg, flags, batch):
    """SAM2Train's core loss, its gradients by parameter name, and the plan it drew."""
    model = build_sam2_train(
        official,
        model_cfg,
        rand_init_cond_frames_for_train=False,
        rand_frames_to_correct_for_train=False,
        prob_to_sample_from_gt_for_train=0.0,
        # SAM2Train's default is False; SAM 2.1's training yaml (and ours) say True.
        add_all_frames_to_correct_as_cond=YAML_MODEL.add_all_frames_to_correct_as_cond,
        **flags,
    )
    drawn = {}
    prepare = model.prepare_prompt_inputs
    model.prepare_prompt_inputs = lambda *a, **k: drawn.update(prepare(*a, **k)) or drawn
    inputs = _official_input(batch)
    loss = reference_loss()(model(inputs), inputs.masks)[CORE_LOSS_KEY]
    model.zero_grad()
    loss.backward()
    grads = {k: p.grad for k, p in model.named_parameters()}
    return float(loss.detach()), grads, drawn


def _ours(official, batch, plan, corrections, flags, dtype):
    cfg = tiny_model.train_config(corrections=corrections)
    cfg.prompts.prob_to_sample_from_gt = 0.0
    assert (
        cfg.prompts.add_all_frames_to_correct_as_cond
        == YAML_MODEL.add_all_frames_to_correct_as_cond
    )
    cfg.prompts.num_init_cond_frames = flags.get("num_init_cond_frames_for_train", 1)
    cfg.prompts.num_frames_to_correct = flags.get("num_frames_to_correct_for_train", 1)
    model_cfg = tiny_model.model_config(dropout=0.0)
    model_cfg.dtype = dtype
    model = build_model(model_cfg, rngs=nnx.Rngs(0))
    copy_weights(model, official)
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)

    def loss(params, batch, plan):
        return clip_loss(nnx.merge(graphdef, params, rest), batch, jax.random.key(0), cfg, plan)[0]

    grad_fn = jax.jit(jax.value_and_grad(loss), compiler_options=fast_compile.OPTIONS)  # runs once
    value, grads = grad_fn(params, batch, plan)
    return float(value), flat_state(grads), torch_names(model)


def _softmax_invariant(torch_key: str) -> bool:
    """Key biases of the decoder's plain (RoPE-free) attentions."""
    return torch_key.startswith("sam_mask_decoder.") and torch_key.endswith("k_proj.bias")


# With single-threaded XLA (as the suite runs) this case's loss matches in float32, but five
# gradients of the decoder's first two-way block (mlp.layers.0, the q/k projections) differ
# by 1.5-4e-3 of their max (multi-threaded: below 1e-3). Both sides in float64 they agree to
# 3e-6: float32 conditioning (three correction rounds through the same decoder), not a
# difference of semantics. So the case is checked in float64, at the same bars.
FLOAT64_CASES = {"click_and_corrections"}


@contextlib.contextmanager
def _precision(dtype: str, monkeypatch):
    """Both sides in ``dtype``. In float64 two casts of the reference to float32 follow
    the weights' dtype instead: the point coordinates before the prompt encoder's Fourier
    matrix (``PositionEmbeddingRandom.forward_with_coords``) and the masks into its convs."""
    if dtype == "float32":
        yield
        return
    pe = position_encoding.PositionEmbeddingRandom
    encode, conv = pe._pe_encoding, torch.nn.Conv2d._conv_forward
    matrix_dtype = lambda self, c: encode(
        self, c.to(self.positional_encoding_gaussian_matrix.dtype)
    )
    monkeypatch.setattr(pe, "_pe_encoding", matrix_dtype)
    monkeypatch.setattr(
        torch.nn.Conv2d, "_conv_forward", lambda m, x, w, b: conv(m, x.to(w.dtype), w, b)
    )
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        with jax.enable_x64(True):
            yield
    finally:
        torch.set_default_dtype(default)


@pytest.mark.parametrize("case", CASES)
def test_loss_and_every_gradient_match_sam2train(case, monkeypatch):
    dtype = "float64" if case in FLOAT64_CASES else "float32"
    with _precision(dtype, monkeypatch):
        _check(case, dtype, monkeypatch)


def _check(case, dtype, monkeypatch):
    frames, flags, corrections = CASES[case]
    model_cfg = _official_cfg()
    torch.manual_seed(0)
    official = instantiate(model_cfg, _recursive_=True)
    randomize_(official, 0, "perturb")
    flags = dict(flags, num_correction_pt_per_frame=corrections)
    monkeypatch.setattr(sam2_train_module, "get_next_point", _torch_click)
    monkeypatch.setattr(ps, "sample_correction_click", _jax_click)
    batch = _batch(frames)
    want_loss, want_grads, drawn = _reference(official, model_cfg, flags, batch)
    plan = _our_plan(drawn, frames, ps.NUM_INIT_SLOTS + corrections)
    got_loss, got_grads, names = _ours(official, batch, plan, corrections, flags, dtype)

    failures, compared = [], 0
    for name, (key, axes) in names.items():
        got = np.asarray(got_grads[name])
        got = got if axes is None else got.transpose(axes)
        want = np.zeros(got.shape) if want_grads[key] is None else want_grads[key].numpy()
        scale = np.abs(want).max()
        err = np.abs(got - want).max()
        compared += scale > 0
        if _softmax_invariant(key):
            # A bias added to every key shifts each softmax row by a constant: its exact
            # gradient is 0 and both sides hold float noise, far below the weight's.
            weight = want_grads[key.replace(".bias", ".weight")]
            weight = 0.0 if weight is None else np.abs(weight.numpy()).max()
            scale, err = weight, max(np.abs(got).max(), np.abs(want).max()) * 1e3
        if err > GRAD_RTOL * scale:
            failures.append(f"{name} ({key}): max|a-b| {err:.3e}, max|ref| {scale:.3e}")
    assert not failures, f"{len(failures)} of {len(names)} gradients differ:\n" + "\n".join(
        failures
    )
    assert compared > len(names) // 2  # most parameters really receive a gradient
    assert got_loss == pytest.approx(want_loss, rel=LOSS_RTOL)
