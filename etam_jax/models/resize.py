"""Exact ports of the resizes the official predictors use, as separable weight matrices.

The official code resizes with torch:

- ``F.interpolate(x, size, mode="bilinear", align_corners=False)`` -- the final
  low-res logits -> original image size (``SAM2Transforms.postprocess_masks``,
  the video predictor's ``_get_orig_video_res_output``);
- the same with ``antialias=True`` -- torchvision's ``Resize`` on a tensor
  (``SAM2Transforms``'s image resize), the mask prompt -> model size in the video
  predictor's ``add_new_mask`` and ``_forward_sam_heads``'s mask -> low-res size.

Both are separable: along each axis the output is a fixed ``[out, in]`` weight
matrix times the input. We build those matrices on the host (numpy, float32,
from static shapes, following torch's index/weight formulas in
``aten/src/ATen/native/UpSample.h`` and ``cpu/UpSampleKernel.cpp``; the tests
check they equal torch's bit for bit) and apply them with a contraction, so the
same functions work on numpy arrays and inside ``jax.jit`` (where the matrices
are compile-time constants). Results agree with torch up to float32 rounding of
the weighted sums. On numpy with ``antialias=True`` each output instead sums
its window's taps one by one in torch's order (`_apply_taps`): that path feeds
thresholds (a mask prompt resized, then ``>= 0.5``), where a window straddling
an edge sums to 0.5 up to rounding and the rounding decides the pixel. Summing
in torch's order reproduces torch's choice on such masks (a contraction flipped
pixels of a portrait mask prompt); torch's vectorised kernels do not round the
same way everywhere, so other values still agree to float32 rounding only.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np


@functools.lru_cache(maxsize=64)
def bilinear_weights(in_size: int, out_size: int, antialias: bool = False) -> np.ndarray:
    """The ``[out_size, in_size]`` matrix of torch's 1-D bilinear resize (align_corners=False).

    Indices and weights are computed in float32, as torch does for float32
    inputs, so they round the same way.

    Args:
      in_size: input length along the axis.
      out_size: output length along the axis.
      antialias: torch's ``antialias=True`` (a triangle filter stretched by the
        scale when downsampling; the same as plain bilinear when upsampling).

    Returns:
      float32 array whose rows sum to 1; read-only (it is cached).
    """
    if in_size < 1 or out_size < 1:
        raise ValueError(f"bilinear_weights: sizes must be positive, got {in_size} -> {out_size}")
    weights = (_aa_weights if antialias else _plain_weights)(in_size, out_size)
    weights.setflags(write=False)
    return weights


def _plain_weights(in_size: int, out_size: int) -> np.ndarray:
    # As UpSample.h area_pixel_compute_source_index / guard_index_and_lambda
    # (align_corners=False): src = scale * (dst + 0.5) - 0.5 clamped at 0, the
    # upper neighbour clamped to the last pixel. The scale is float32; src is
    # rounded to float32 once (torch's kernel fuses the multiply-add), which
    # reproduces torch's weights bit for bit.
    f32 = np.float32
    scale = float(f32(f32(in_size) / f32(out_size)))
    src = np.maximum((scale * (np.arange(out_size) + 0.5) - 0.5).astype(f32), f32(0))
    lo = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
    frac = np.clip(src - lo.astype(f32), f32(0), f32(1))
    hi = np.where(lo < in_size - 1, lo + 1, lo)
    weights = np.zeros((out_size, in_size), f32)
    rows = np.arange(out_size)
    np.add.at(weights, (rows, lo), f32(1) - frac)
    np.add.at(weights, (rows, hi), frac)
    return weights


def _aa_weights(in_size: int, out_size: int) -> np.ndarray:
    # As UpSampleKernel.cpp _compute_weights_aa (interp_size 2, float32): window
    # [center - support, center + support) with support = max(scale, 1), weights
    # triangle((j - center + 0.5) * invscale), then divided by their sum.
    f32 = np.float32
    scale = f32(f32(in_size) / f32(out_size))
    support = scale if scale >= 1.0 else f32(1.0)
    inv_scale = f32(1.0 / float(scale)) if scale >= 1.0 else f32(1.0)
    weights = np.zeros((out_size, in_size), f32)
    for i in range(out_size):
        center = f32(float(scale) * (i + 0.5))
        x_min = max(int(float(center) - float(support) + 0.5), 0)
        x_max = min(int(float(center) + float(support) + 0.5), in_size)
        w = [
            max(f32(1) - abs(f32((j + x_min - float(center) + 0.5) * float(inv_scale))), f32(0))
            for j in range(x_max - x_min)
        ]
        w = np.asarray(w, f32)
        total = f32(0)
        for v in w:  # sequential float32 sum, as the kernel accumulates
            total = f32(total + v)
        weights[i, x_min:x_max] = w / total if total != 0 else w
    return weights


@functools.lru_cache(maxsize=64)
def _taps(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Each output's antialias window as ``[out, K]`` input indices and weights, in order.

    The window runs from the first to the last non-zero weight of the row;
    shorter rows are padded with weight 0 (adding ``x * 0`` leaves a float sum unchanged).
    """
    w = bilinear_weights(in_size, out_size, antialias=True)
    nonzero = w != 0
    first = nonzero.argmax(1)
    last = in_size - 1 - nonzero[:, ::-1].argmax(1)
    pos = first[:, None] + np.arange(int((last - first).max()) + 1)
    idx = np.minimum(pos, in_size - 1)
    taps = np.where(pos <= last[:, None], np.take_along_axis(w, idx, 1), np.float32(0))
    return idx, taps.astype(np.float32)


def _apply_taps(x: np.ndarray, axis: int, out_size: int) -> np.ndarray:
    """torch's antialiased 1-D resize of ``x`` along ``axis``: per output,
    ``acc = x[i0] * w0; acc += x[i1] * w1; ...`` in float32 (``interpolate_aa_single_dim``)."""
    idx, taps = _taps(x.shape[axis], out_size)
    x = np.moveaxis(x, axis, -1).astype(np.float32, copy=False)
    acc = x[..., idx[:, 0]] * taps[:, 0]
    for k in range(1, idx.shape[1]):
        acc = acc + x[..., idx[:, k]] * taps[:, k]
    return np.moveaxis(acc, -1, axis)


def resize_bilinear(
    x,
    size: tuple[int, int],
    *,
    axes: tuple[int, int] = (-2, -1),
    antialias: bool = False,
):
    """Bilinear resize of two axes of ``x``, as torch ``F.interpolate(..., align_corners=False)``.

    Args:
      x: numpy or JAX array, float (other dtypes are computed in float32).
      size: ``(out_h, out_w)`` for ``axes``.
      axes: the (height, width) axes; ``(-2, -1)`` for ``[..., H, W]`` mask
        stacks, ``(-3, -2)`` for channel-last images ``[..., H, W, C]``.
      antialias: torch's ``antialias=True``.

    Returns:
      An array of the same kind as ``x`` (numpy in, numpy out), float32 unless
      ``x`` is float64 (numpy) / another float dtype (JAX), with ``axes``
      resized to ``size``.
    """
    xp = np if isinstance(x, np.ndarray) else jnp
    if not xp.issubdtype(x.dtype, xp.floating):
        x = x.astype(xp.float32)
    ax_h, ax_w = (a % x.ndim for a in axes)
    # Width first, then height, as torch's separable kernels do.
    for axis, out in ((ax_w, size[1]), (ax_h, size[0])):
        if x.shape[axis] == out:
            continue  # torch's weights are the identity here
        if xp is np and antialias and x.dtype == np.float32:
            x = _apply_taps(x, axis, out)
            continue
        w = bilinear_weights(x.shape[axis], out, antialias).astype(x.dtype)
        if xp is np:
            x = np.tensordot(w, x, axes=([1], [axis]))
        else:  # full float32 matmul also on TPU/GPU, whose default is bfloat16 passes
            x = jnp.tensordot(w, x, axes=([1], [axis]), precision=jax.lax.Precision.HIGHEST)
        x = xp.moveaxis(x, 0, axis)
    return x


def resize_image(image_hwc, size: tuple[int, int]):
    """torchvision ``Resize(size)`` on a float ``[..., H, W, C]`` image (bilinear, antialiased).

    As torchvision ``functional.resize`` on a tensor: unchanged when already at
    ``size``, else ``F.interpolate(bilinear, align_corners=False, antialias=True)``.
    """
    return resize_bilinear(image_hwc, size, axes=(-3, -2), antialias=True)
