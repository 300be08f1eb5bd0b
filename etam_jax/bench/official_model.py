"""The official EfficientTAM (PyTorch, `efficient-track-anything==1.0`), randomised, for
parity tests and benchmarks beside it.

Builds official modules from the official yaml configs (at any image size),
randomises every parameter and buffer, and copies weights into our Flax
modules through the same naming rule the converter uses. Needs torch, hydra
and the official package (module `sam2`); imported only by tests and `etam bench`.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
from flax import nnx
from hydra.utils import instantiate
from omegaconf import OmegaConf

from etam_jax.convert.naming import load_torch_arrays
from etam_jax.errors import EtamError

# The official yaml configs (the wheel ships none): $ETAM_OFFICIAL_CONFIGS, else
# shared/reference/official_configs beside the checkout, for developers and CI alike.
CONFIG_DIR = Path(
    os.environ.get(
        "ETAM_OFFICIAL_CONFIGS",
        Path(__file__).resolve().parents[3] / "shared" / "reference" / "official_configs",
    )
)


def official_config(name: str, image_size: int | None = None, patch_size: int | None = None):
    """The official OmegaConf model config, optionally at another image size.

    ``patch_size`` also sets the official ``backbone_stride`` and the mask
    downsampler's ``total_stride`` to it, as our configs derive both from the
    trunk's patch size. (The official ``mask_downsample``, 4 x 4 stride 4, stays:
    ``build_official`` replaces it.)
    """
    path = CONFIG_DIR / f"{name}.yaml"
    if not path.is_file():
        raise EtamError(
            f"official config {path} not found: set ETAM_OFFICIAL_CONFIGS to the folder of "
            "the official yaml configs (shared/reference/official_configs)"
        )
    cfg = OmegaConf.load(path)
    cfg.model.compile_image_encoder = False
    if image_size is not None:
        cfg.model.image_size = image_size
    if patch_size is not None:
        cfg.model.image_encoder.trunk.patch_size = patch_size
        cfg.model.backbone_stride = patch_size
        cfg.model.memory_encoder.mask_downsampler.total_stride = patch_size
    stride = cfg.model.image_encoder.trunk.patch_size
    grid = cfg.model.image_size // stride
    layer = cfg.model.memory_attention.layer
    layer.self_attention.feat_sizes = [grid, grid]
    layer.cross_attention.feat_sizes = [grid, grid]
    return cfg


def build_official(
    name: str,
    image_size: int | None = None,
    seed: int = 0,
    scheme: str = "replace",
    patch_size: int | None = None,
) -> torch.nn.Module:
    """The official SAM2Base model in eval mode with every weight randomised (`randomize_`).

    With a ``patch_size`` other than 16 its ``mask_downsample`` becomes a
    ``patch_size / 4`` conv (image-size masks to the prompt encoder's 4x grid),
    as ours; the official paths that hard-code a stride of 16 in other ways
    (``_use_mask_as_output``'s low-res size) still do.
    """
    torch.manual_seed(seed)
    cfg = official_config(name, image_size, patch_size)
    model = instantiate(cfg.model, _recursive_=True)
    stride = cfg.model.image_encoder.trunk.patch_size
    if stride != 16:
        model.mask_downsample = torch.nn.Conv2d(1, 1, stride // 4, stride=stride // 4)
    randomize_(model, seed, scheme)
    return model.eval()


def randomize_(module: torch.nn.Module, seed: int, scheme: str = "replace") -> None:
    """Randomises every parameter and buffer of ``module`` in place.

    Matrices and conv kernels ~ N(0, 1/fan_in) (variance preserving, so
    activations keep their scale through 12 blocks) under both schemes. The
    rest (biases, norms, embeddings, zero-initialised tokens, the Fourier
    matrix, temporal encodings) is drawn afresh around its usual value
    (``"replace"``), or perturbed around the value the official init gave it
    (``"perturb"``: t + 0.5 std(t) N(0, 1); norm weights 1 + 0.1 N;
    zero-initialised tensors, LayerScale included, 0.05 N). The object-score
    head's last bias is shifted by +1 so that objects stay "present" with a
    margin (see EFFICIENTTAM.md).
    """
    if scheme not in ("replace", "perturb"):
        raise ValueError(f"scheme {scheme!r}: expected 'replace' or 'perturb'")
    gen = torch.Generator().manual_seed(seed)
    draw = _draw_replace if scheme == "replace" else _draw_perturb
    with torch.no_grad():
        for name, tensor in module.state_dict(keep_vars=True).items():
            if not tensor.is_floating_point():
                continue
            noise = torch.randn(tensor.shape, generator=gen)
            leaf = name.rsplit(".", 1)[-1]
            if leaf == "weight" and tensor.ndim >= 2 and "embed" not in name:
                fan_in = math.prod(tensor.shape[1:])
                if "output_upscaling" in name:  # ConvTranspose: (in, out, kh, kw)
                    fan_in = tensor.shape[0]
                tensor.copy_(noise / math.sqrt(fan_in))
            else:
                tensor.copy_(draw(tensor, leaf, noise))
        head = getattr(getattr(module, "sam_mask_decoder", None), "pred_obj_score_head", None)
        if head is not None:
            head.layers[-1].bias.add_(1.0)


def _draw_replace(t: torch.Tensor, leaf: str, noise: torch.Tensor) -> torch.Tensor:
    if leaf in ("weight", "gamma") and t.ndim == 1:
        return 1.0 + 0.2 * noise
    if leaf == "bias":
        return 0.1 * noise
    return noise * (t.std() if t.numel() > 1 and t.std() > 0 else 1.0)


def _draw_perturb(t: torch.Tensor, leaf: str, noise: torch.Tensor) -> torch.Tensor:
    if t.abs().max() < 1e-5:  # zero-initialised (LayerScale's 1e-6 included)
        return 0.05 * noise
    if leaf == "weight" and t.ndim == 1:  # norms
        return 1.0 + 0.1 * noise
    std = t.std() if t.numel() > 1 and t.std() > 0 else t.abs().max()
    return t + 0.5 * std * noise


def state_dict_numpy(module: torch.nn.Module, prefix: str = "") -> dict[str, np.ndarray]:
    """The module's state dict as float numpy arrays, keys prefixed."""
    return {prefix + k: v.detach().cpu().numpy() for k, v in module.state_dict().items()}


def copy_weights(ours: nnx.Module, official: torch.nn.Module) -> None:
    """Loads ``official``'s weights into ``ours`` (keys and shapes must match exactly)."""
    load_torch_arrays(ours, state_dict_numpy(official), source=type(official).__name__)


def relative_error(ours, ref) -> float:
    """max |ours - ref| / max(1, max |ref|)."""
    ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
    return float(np.abs(ours - ref).max() / max(1.0, np.abs(ref).max()))
