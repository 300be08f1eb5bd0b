"""The plain ViT trunk of EfficientTAM (official ``sam2.modeling.backbones.vitdet.ViT``).

Patch embedding (16x16 conv), an absolute position embedding learned at the
pretraining size (with a cls-token row) resized bicubically to the feature
grid, then blocks with window attention (zero-padded to a multiple of the
window) or global attention. Channel-last throughout: ``[B, H, W, C]``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from einops import rearrange
from flax import nnx
from jaxtyping import Array, Float

from etam_jax.errors import EtamError
from etam_jax.models.blocked_attention import (
    auto_query_chunk,
    chunked_dot_product_attention,
)
from etam_jax.models.layers import conv, gelu, layer_norm, linear, param
from etam_jax.models.mlp import MLP

# As ViT's default norm_layer: partial(nn.LayerNorm, eps=1e-6).
NORM_EPS = 1e-6
# torch's bicubic kernel constant (``upsample_bicubic2d``); jax.image.resize uses -0.5.
TORCH_CUBIC_A = -0.75


def _cubic_weights(t: np.ndarray) -> np.ndarray:
    """(n,) fractions -> (n, 4) weights of taps at floor-1 .. floor+2 (torch's Keys kernel)."""
    a = TORCH_CUBIC_A

    def near(x):  # |x| <= 1
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def far(x):  # 1 < |x| < 2
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    return np.stack([far(t + 1), near(t), near(1 - t), far(2 - t)], axis=-1)


@functools.lru_cache(maxsize=64)
def torch_bicubic_matrix(in_size: int, out_size: int) -> np.ndarray:
    """The ``(out_size, in_size)`` matrix of torch's 1-D bicubic resize, float32.

    As ``F.interpolate(mode="bicubic", align_corners=False)`` with ``size=``
    (CPU ``upsample_bicubic2d``): source coordinate ``(i + 0.5) * in / out - 0.5``
    (not clamped), floor index capped at ``in - 1``, fraction clamped to [0, 1],
    taps clamped to the border.
    """
    real = (np.arange(out_size, dtype=np.float64) + 0.5) * (in_size / out_size) - 0.5
    index = np.minimum(np.floor(real), in_size - 1).astype(np.int64)
    weights = _cubic_weights(np.clip(real - index, 0.0, 1.0))
    taps = np.clip(index[:, None] + np.arange(-1, 3), 0, in_size - 1)
    matrix = np.zeros((out_size, in_size), np.float64)
    np.add.at(matrix, (np.repeat(np.arange(out_size), 4), taps.ravel()), weights.ravel())
    matrix = matrix.astype(np.float32)
    matrix.setflags(write=False)  # cached: shared by every caller
    return matrix


def resize_bicubic_torch(
    x: Float[Array, "b h w c"], size: tuple[int, int]
) -> Float[Array, "b oh ow c"]:
    """Resizes ``[B, H, W, C]`` as torch's bicubic ``F.interpolate`` (align_corners=False)."""
    rows = torch_bicubic_matrix(x.shape[1], size[0])
    cols = torch_bicubic_matrix(x.shape[2], size[1])
    return jnp.einsum("ai,bj,nijc->nabc", rows, cols, x, precision=jax.lax.Precision.HIGHEST)


def get_abs_pos(
    abs_pos: Float[Array, "1 n c"], has_cls_token: bool, hw: tuple[int, int]
) -> Float[Array, "1 h w c"]:
    """The absolute position embedding on an ``hw`` grid (as ``backbones.utils.get_abs_pos``).

    Args:
      abs_pos: ``[1, num_positions, C]``, a square grid (after an optional cls row).
      has_cls_token: drop the first row first.
      hw: the target grid ``(h, w)``.

    Returns:
      ``[1, h, w, C]``.
    """
    if has_cls_token:
        abs_pos = abs_pos[:, 1:]
    size = math.isqrt(abs_pos.shape[1])
    if size * size != abs_pos.shape[1]:
        raise EtamError(f"ViT pos_embed: {abs_pos.shape[1]} positions do not form a square grid")
    grid = abs_pos.reshape(1, size, size, -1)
    return grid if (size, size) == tuple(hw) else resize_bicubic_torch(grid, hw)


def window_partition(x: Float[Array, "b h w c"], window: int) -> tuple[jax.Array, tuple[int, int]]:
    """Zero-pads to a multiple of ``window`` and splits into windows (``utils.window_partition``).

    Returns:
      ``[B * num_windows, window, window, C]`` windows (row-major over the
      window grid, batch outermost) and the padded ``(Hp, Wp)``.
    """
    _, h, w, _ = x.shape
    pad_h, pad_w = -h % window, -w % window
    x = jnp.pad(x, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)))
    windows = rearrange(x, "b (nh wh) (nw ww) c -> (b nh nw) wh ww c", wh=window, ww=window)
    return windows, (h + pad_h, w + pad_w)


def window_unpartition(
    windows: jax.Array, window: int, pad_hw: tuple[int, int], hw: tuple[int, int]
) -> Float[Array, "b h w c"]:
    """Inverse of :func:`window_partition`, dropping the padding (``utils.window_unpartition``)."""
    nh, nw = pad_hw[0] // window, pad_hw[1] // window
    x = rearrange(windows, "(b nh nw) wh ww c -> b (nh wh) (nw ww) c", nh=nh, nw=nw)
    return x[:, : hw[0], : hw[1]]


class PatchEmbed(nnx.Module):
    """Non-overlapping patch projection (``utils.PatchEmbed`` with kernel = stride = patch)."""

    def __init__(
        self, patch_size: int, in_chans: int, embed_dim: int, *, rngs: nnx.Rngs, dtype=jnp.float32
    ):
        self.proj = conv(in_chans, embed_dim, patch_size, stride=patch_size, rngs=rngs, dtype=dtype)

    def __call__(self, x: Float[Array, "b h w c"]) -> Float[Array, "b gh gw d"]:
        return self.proj(x)


class Attention(nnx.Module):
    """ViTDet multi-head self-attention with a fused ``qkv`` projection (no rel-pos)."""

    def __init__(
        self, dim: int, num_heads: int, *, rngs: nnx.Rngs, qkv_bias: bool = True, dtype=jnp.float32
    ):
        if dim % num_heads:
            raise EtamError(f"ViT: num_heads {num_heads} must divide embed_dim {dim}")
        self.num_heads = num_heads
        self.qkv = linear(
            dim, 3 * dim, axes=("embed", "heads"), use_bias=qkv_bias, rngs=rngs, dtype=dtype
        )
        self.proj = linear(dim, dim, axes=("heads", "embed"), rngs=rngs, dtype=dtype)

    def __call__(self, x: Float[Array, "b h w c"]) -> Float[Array, "b h w c"]:
        _, h, w, _ = x.shape
        # As vitdet.Attention.forward: qkv channels are laid out (3, heads, head_dim).
        qkv = rearrange(
            self.qkv(x), "b h w (three n d) -> three b (h w) n d", three=3, n=self.num_heads
        )
        out = chunked_dot_product_attention(qkv[0], qkv[1], qkv[2], auto_query_chunk(h * w))
        return self.proj(rearrange(out, "b (h w) n d -> b h w (n d)", h=h, w=w))


class Block(nnx.Module):
    """Pre-norm transformer block; window attention when ``window_size > 0``."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        *,
        rngs: nnx.Rngs,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        window_size: int = 0,
        dtype=jnp.float32,
    ):
        self.norm1 = layer_norm(dim, eps=NORM_EPS, rngs=rngs, dtype=dtype)
        self.attn = Attention(dim, num_heads, qkv_bias=qkv_bias, rngs=rngs, dtype=dtype)
        self.norm2 = layer_norm(dim, eps=NORM_EPS, rngs=rngs, dtype=dtype)
        # As vitdet.Block: act_layer defaults to nn.GELU, the exact (erf) form.
        self.mlp = MLP(dim, int(dim * mlp_ratio), dim, 2, activation=gelu, rngs=rngs, dtype=dtype)
        self.window_size = window_size

    def __call__(self, x: Float[Array, "b h w c"]) -> Float[Array, "b h w c"]:
        shortcut = x
        x = self.norm1(x)
        if self.window_size > 0:
            hw = x.shape[1:3]
            windows, pad_hw = window_partition(x, self.window_size)
            x = window_unpartition(self.attn(windows), self.window_size, pad_hw, hw)
        else:
            x = self.attn(x)
        x = shortcut + x
        return x + self.mlp(self.norm2(x))


class ViT(nnx.Module):
    """The ViTDet trunk (``vitdet.ViT`` with abs pos-embed, no rel-pos, no intermediate outputs).

    Args:
      patch_size, embed_dim, depth, num_heads, mlp_ratio: the usual ViT shapes.
      window_size: side of attention windows in ``window_block_indexes``.
      window_block_indexes: blocks with window attention; the others are global.
      pretrain_img_size: the size the position embedding was learned at.
      pretrain_use_cls_token: the position embedding has a leading cls row.
      in_chans: image channels.
    """

    def __init__(
        self,
        *,
        patch_size: int = 16,
        embed_dim: int = 192,
        depth: int = 12,
        num_heads: int = 3,
        mlp_ratio: float = 4.0,
        window_size: int = 14,
        window_block_indexes: Sequence[int] = (0, 1, 3, 4, 6, 7, 9, 10),
        pretrain_img_size: int = 224,
        pretrain_use_cls_token: bool = True,
        in_chans: int = 3,
        rngs: nnx.Rngs,
        dtype=jnp.float32,
    ):
        global_blocks = [i for i in range(depth) if i not in window_block_indexes]
        if not global_blocks:
            raise EtamError(
                f"ViT: window_block_indexes {list(window_block_indexes)} leave no global block"
            )
        # As vitdet.ViT.forward: the output is taken after the last global-attention block.
        self.last_global_block = global_blocks[-1]
        self.pretrain_use_cls_token = pretrain_use_cls_token
        self.dtype = dtype
        self.patch_embed = PatchEmbed(patch_size, in_chans, embed_dim, rngs=rngs, dtype=dtype)
        num_positions = (pretrain_img_size // patch_size) ** 2 + int(pretrain_use_cls_token)
        self.pos_embed = param(rngs, (1, num_positions, embed_dim), (None, "pos", "embed"))
        self.blocks = nnx.List(
            [
                Block(
                    embed_dim,
                    num_heads,
                    mlp_ratio=mlp_ratio,
                    window_size=window_size if i in window_block_indexes else 0,
                    rngs=rngs,
                    dtype=dtype,
                )
                for i in range(depth)
            ]
        )

    def __call__(self, x: Float[Array, "b h w 3"]) -> Float[Array, "b gh gw d"]:
        """Args: x ``[B, H, W, 3]`` normalised images. Returns ``[B, H/16, W/16, D]``.

        The output is the last global-attention block's (the last block in the
        official configs); the official trunk runs any later blocks and drops
        their result, we skip them. It returns a one-element channel-first
        list (``return_interm_layers=False``); we return that level channel-last.
        """
        x = self.patch_embed(x)
        pos = get_abs_pos(self.pos_embed[...], self.pretrain_use_cls_token, x.shape[1:3])
        x = x + pos.astype(x.dtype)
        for block in self.blocks[: self.last_global_block + 1]:
            x = block(x)
        return x
