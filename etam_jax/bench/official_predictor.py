"""The official PyTorch video predictor, driven with our prompts (parity tests, benchmarks).

Needs torch and the official package (`efficient-track-anything==1.0`,
module `sam2`) and the official yaml configs (`official_model.CONFIG_DIR`
beside the checkout); imported only by tests and `etam bench track`.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from etam_jax.inference.prompts_io import Prompt
from etam_jax.models import prompt_labels

# As sam2.build_sam.build_sam2_video_predictor(apply_postprocessing=True).
_POSTPROCESSING = {
    "dynamic_multimask_via_stability": True,
    "dynamic_multimask_stability_delta": 0.05,
    "dynamic_multimask_stability_thresh": 0.98,
}


def build_official_predictor(
    name: str, image_size: int | None = None, seed: int = 0, scheme: str = "replace"
):
    """The official `SAM2VideoPredictor` (as its builder sets it up), every weight randomised
    (`official_model.randomize_`, `scheme` "replace" or "perturb")."""
    import torch
    from hydra.utils import instantiate

    from etam_jax.bench.official_model import official_config, randomize_

    cfg = official_config(name, image_size)
    cfg.model._target_ = "sam2.sam2_video_predictor.SAM2VideoPredictor"
    cfg.model.sam_mask_decoder_extra_args = dict(_POSTPROCESSING)
    cfg.model.binarize_mask_from_pts_for_mem_enc = True
    torch.manual_seed(seed)
    model = instantiate(cfg.model, _recursive_=True)
    randomize_(model, seed, scheme)
    return model.eval()


def add_official_prompt(predictor, state, p: Prompt) -> None:
    """Adds one prompt: a mask via `add_new_mask`, then box (points 2, 3) + clicks."""
    if p.mask is not None:
        predictor.add_new_mask(state, p.frame, p.obj_id, p.mask)
    pts, lbl = [], []
    if p.box is not None:  # the PyPI 1.0 predictor's box: two corner points first
        pts.append(p.box.reshape(2, 2))
        lbl.append(np.array(prompt_labels.BOX, np.int32))
    if p.points is not None:
        pts.append(p.points)
        lbl.append(p.labels)
    if pts:
        predictor.add_new_points(state, p.frame, p.obj_id, np.concatenate(pts), np.concatenate(lbl))


def run_official(
    predictor, frames_dir: str, prompts: Iterable[Prompt], reverse: bool = False
) -> dict[int, dict[int, np.ndarray]]:
    """Runs the official predictor once on all `prompts` (one session).

    Returns:
        {obj_id: {frame_idx: [H, W] float32 logits}}, forward then (with
        `reverse`) backward, as `propagate_in_video` yields them.
    """
    import torch

    out: dict[int, dict[int, np.ndarray]] = {}
    with torch.inference_mode():
        state = predictor.init_state(frames_dir)
        for p in prompts:
            add_official_prompt(predictor, state, p)
        for rev in (False, True) if reverse else (False,):
            for frame_idx, obj_ids, masks in predictor.propagate_in_video(state, reverse=rev):
                for k, obj_id in enumerate(obj_ids):
                    out.setdefault(obj_id, {})[frame_idx] = masks[k, 0].float().numpy()
    return out


def run_official_per_object(
    predictor, frames_dir: str, prompts: list[Prompt], reverse: bool = False
) -> dict[int, dict[int, np.ndarray]]:
    """The reference for our independent tracking: each object run alone."""
    out = {}
    for obj_id in dict.fromkeys(p.obj_id for p in prompts):
        mine = sorted((p for p in prompts if p.obj_id == obj_id), key=lambda p: p.frame)
        out[obj_id] = run_official(predictor, frames_dir, mine, reverse)[obj_id]
    return out


def state_dict_of(model) -> dict:
    """Our model's weights as an official torch state dict."""
    import torch

    from etam_jax.convert.naming import to_torch_arrays

    return {k: torch.from_numpy(np.array(v)) for k, v in to_torch_arrays(model).items()}


def time_official(predictor, frames_dir: str, prompts: list[Prompt], time_frames) -> dict:
    """Times the official predictor on all objects at once (its normal use).

    Args:
        time_frames: consumes the (frame, ...) iterator and returns the timing dict.

    Returns:
        time_frames' dict plus ``load_s`` (init_state: every frame decoded up
        front) and ``prompt_s`` (add_new_points / add_new_mask).
    """
    import time

    import torch

    with torch.inference_mode():
        t0 = time.perf_counter()
        state = predictor.init_state(frames_dir)
        t1 = time.perf_counter()
        for p in prompts:
            add_official_prompt(predictor, state, p)
        t2 = time.perf_counter()
        result = time_frames(predictor.propagate_in_video(state))
    return {**result, "load_s": t1 - t0, "prompt_s": t2 - t1}
