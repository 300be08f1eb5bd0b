"""SAM's prompt encoder (official ``sam.prompt_encoder.PromptEncoder``), channel-last.

Points and boxes become sparse tokens (random Fourier encoding of the pixel
position plus a learned embedding per label); a mask prompt becomes a dense
``[B, g, g, C]`` map through ``mask_downscaling`` (or the learned
``no_mask_embed`` everywhere when there is none).

Static shapes: a batch of clicks is padded to a fixed ``N`` with label ``-1``
("not a point"), which the official code embeds as ``not_a_point_embed`` with
no positional part -- the same thing it does for its own padding point.
Labels: ``0`` negative click, ``1`` positive click, ``2``/``3`` top-left /
bottom-right box corner (how the video predictor passes boxes), ``-1`` padding.
"""

from __future__ import annotations

import jax.numpy as jnp
from flax import nnx
from jaxtyping import Array, Float, Int

from etam_jax.errors import EtamError
from etam_jax.models.layers import conv, embedding, gelu, layer_norm
from etam_jax.models.position_encoding import PositionEmbeddingRandom

# pos/neg point + 2 box corners (official ``num_point_embeddings``).
NUM_POINT_EMBEDDINGS = 4
# As sam2_utils.LayerNorm2d's default eps.
_LN2D_EPS = 1e-6


class PromptEncoder(nnx.Module):
    """Embeds point, box and mask prompts for the mask decoder.

    Args:
      embed_dim: token width (256).
      image_embedding_size: ``(g, g)``, the image-embedding grid.
      input_image_size: ``(H, W)`` of the encoder input; point coordinates are
        pixels in this frame.
      mask_in_chans: hidden channels of ``mask_downscaling`` (16 in SAM 2).
    """

    def __init__(
        self,
        embed_dim: int,
        image_embedding_size: tuple[int, int],
        input_image_size: tuple[int, int],
        mask_in_chans: int,
        *,
        rngs: nnx.Rngs,
        dtype=jnp.float32,
    ):
        self.embed_dim = embed_dim
        self.input_image_size = tuple(input_image_size)
        self.image_embedding_size = tuple(image_embedding_size)
        self.mask_input_size = (4 * image_embedding_size[0], 4 * image_embedding_size[1])
        self.pe_layer = PositionEmbeddingRandom(embed_dim // 2, rngs=rngs)
        self.point_embeddings = nnx.List(
            [embedding(1, embed_dim, rngs=rngs) for _ in range(NUM_POINT_EMBEDDINGS)]
        )
        self.not_a_point_embed = embedding(1, embed_dim, rngs=rngs)
        quarter = mask_in_chans // 4
        # Indices mirror the torch Sequential: conv, LN2d, GELU, conv, LN2d, GELU, conv.
        self.mask_downscaling = nnx.List(
            [
                conv(1, quarter, 2, stride=2, rngs=rngs, dtype=dtype),
                layer_norm(quarter, eps=_LN2D_EPS, rngs=rngs, dtype=dtype),
                gelu,
                conv(quarter, mask_in_chans, 2, stride=2, rngs=rngs, dtype=dtype),
                layer_norm(mask_in_chans, eps=_LN2D_EPS, rngs=rngs, dtype=dtype),
                gelu,
                conv(mask_in_chans, embed_dim, 1, rngs=rngs, dtype=dtype),
            ]
        )
        self.no_mask_embed = embedding(1, embed_dim, rngs=rngs)

    def get_dense_pe(self) -> Float[Array, "1 g g c"]:
        """The positional encoding of the image-embedding grid, ``[1, g, g, embed_dim]``."""
        return self.pe_layer(self.image_embedding_size)[None]

    def _embed_points(
        self, coords: Float[Array, "b n 2"], labels: Int[Array, "b n"], pad: bool
    ) -> Float[Array, "b n2 c"]:
        """As ``PromptEncoder._embed_points``: PE of the pixel centre plus a per-label embedding."""
        coords = jnp.asarray(coords, jnp.float32) + 0.5  # pixel centres
        labels = jnp.asarray(labels, jnp.int32)
        if pad:
            # The official padding point sits at (0, 0) -- appended after the +0.5 shift.
            b = coords.shape[0]
            coords = jnp.concatenate([coords, jnp.zeros((b, 1, 2), jnp.float32)], axis=1)
            labels = jnp.concatenate([labels, jnp.full((b, 1), -1, jnp.int32)], axis=1)
        pe = self.pe_layer.forward_with_coords(coords, self.input_image_size)
        # Row 0: not-a-point (label -1); rows 1..4: labels 0..3. Other labels add nothing.
        table = jnp.concatenate(
            [self.not_a_point_embed.embedding[...]]
            + [e.embedding[...] for e in self.point_embeddings]
        )
        known = (labels >= -1) & (labels < NUM_POINT_EMBEDDINGS)
        learned = jnp.where(
            known[..., None], table[jnp.clip(labels + 1, 0, NUM_POINT_EMBEDDINGS)], 0.0
        )
        # Padding gets no positional part: zeroed, then the learned embedding added (as official).
        return jnp.where((labels == -1)[..., None], 0.0, pe) + learned

    def _embed_boxes(self, boxes: Float[Array, "b 4"]) -> Float[Array, "b 2 c"]:
        """As ``PromptEncoder._embed_boxes``: the two corners, labelled 2 and 3."""
        corners = (jnp.asarray(boxes, jnp.float32) + 0.5).reshape(-1, 2, 2)
        pe = self.pe_layer.forward_with_coords(corners, self.input_image_size)
        corner_embeds = jnp.concatenate(
            [self.point_embeddings[2].embedding[...], self.point_embeddings[3].embedding[...]]
        )
        return pe + corner_embeds

    def _embed_masks(self, masks: Float[Array, "b hm wm 1"]) -> Float[Array, "b g g c"]:
        """``mask_downscaling`` of a ``[B, 4g, 4g, 1]`` mask (logits or 0/1)."""
        if tuple(masks.shape[1:]) != (*self.mask_input_size, 1):
            raise EtamError(
                f"PromptEncoder: mask prompt has shape {list(masks.shape)}, "
                f"expected [B, {self.mask_input_size[0]}, {self.mask_input_size[1]}, 1]"
            )
        x = jnp.asarray(masks, jnp.float32)
        for layer in self.mask_downscaling:
            x = layer(x)
        return x

    def __call__(
        self,
        points: tuple[Float[Array, "b n 2"], Int[Array, "b n"]] | None,
        boxes: Float[Array, "b 4"] | None,
        masks: Float[Array, "b hm wm 1"] | None,
    ) -> tuple[Float[Array, "b n2 c"], Float[Array, "b g g c"]]:
        """Embeds the prompts (as ``PromptEncoder.forward``).

        Args:
          points: ``(coords [B, N, 2], labels [B, N])``: (x, y) pixels in the
            ``input_image_size`` frame and int labels (-1 pad, 0 neg, 1 pos,
            2/3 box corners), or None. Without ``boxes`` one padding point is
            appended, as the official code does.
          boxes: ``[B, 4]`` as (x0, y0, x1, y1) pixels, or None.
          masks: ``[B, 4g, 4g, 1]`` mask prompt, or None.

        Returns:
          sparse ``[B, N', embed_dim]`` with ``N' = N + (boxes is None) + 2 * (boxes
          is not None)`` (0 without points and boxes), and dense ``[B, g, g, embed_dim]``.
        """
        bs = _batch_size(points, boxes, masks)
        sparse = [jnp.zeros((bs, 0, self.embed_dim), jnp.float32)]
        if points is not None:
            sparse.append(self._embed_points(points[0], points[1], pad=boxes is None))
        if boxes is not None:
            sparse.append(self._embed_boxes(boxes))
        if masks is not None:
            dense = self._embed_masks(masks)
        else:
            g_h, g_w = self.image_embedding_size
            dense = jnp.broadcast_to(
                self.no_mask_embed.embedding[...].reshape(1, 1, 1, -1),
                (bs, g_h, g_w, self.embed_dim),
            )
        return jnp.concatenate(sparse, axis=1), dense


def _batch_size(points, boxes, masks) -> int:
    """As ``PromptEncoder._get_batch_size``: the first prompt given decides; 1 without any."""
    for given in (None if points is None else points[0], boxes, masks):
        if given is not None:
            return given.shape[0]
    return 1


def build_prompt_encoder(
    image_size: int,
    hidden_dim: int = 256,
    stride: int = 16,
    *,
    rngs: nnx.Rngs,
    dtype=jnp.float32,
) -> PromptEncoder:
    """The prompt encoder as ``sam2_base._build_sam_heads`` builds it.

    Grid ``image_size // stride`` (official ``backbone_stride``, 16), ``mask_in_chans=16``.
    """
    if image_size % stride:
        raise EtamError(f"PromptEncoder: image_size {image_size} is not a multiple of {stride}")
    grid = image_size // stride
    return PromptEncoder(
        hidden_dim, (grid, grid), (image_size, image_size), 16, rngs=rngs, dtype=dtype
    )
