"""SAM's mask decoder (official ``sam.mask_decoder.MaskDecoder``), channel-last.

Output tokens (object score, IoU, ``1 + num_multimask_outputs`` mask tokens)
are prepended to the prompt tokens and run through the two-way transformer
with the image embedding; the image side is upscaled 4x and each mask token,
through its hypernetwork MLP, becomes a per-pixel linear classifier.

Everything is static-shaped: ``multimask_output`` and ``repeat_image`` are
Python bools (separate compilations), and the dynamic fallback to the best
multimask output (``dynamic_multimask_via_stability``) is a ``jnp.where``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from einops import rearrange
from flax import nnx
from jaxtyping import Array, Float

from etam_jax.errors import EtamError
from etam_jax.models.conv_transpose import ConvTranspose2x2
from etam_jax.models.layers import conv, embedding, gelu, layer_norm, linear
from etam_jax.models.mlp import MLP
from etam_jax.models.two_way_transformer import TwoWayTransformer

# As sam2_utils.LayerNorm2d's default eps.
_LN2D_EPS = 1e-6
# As MaskDecoder.predict_masks without an object-score head: sigmoid(10) ~ 1, "present".
_NO_OBJ_HEAD_LOGIT = 10.0


def _output_upscaling(dim: int, rngs: nnx.Rngs, dtype) -> nnx.List:
    """4x upsampling ``C -> C/8``.

    Indices mirror the torch Sequential: deconv, LN2d, GELU, deconv, GELU.
    """
    return nnx.List(
        [
            ConvTranspose2x2(dim, dim // 4, rngs=rngs, dtype=dtype),
            layer_norm(dim // 4, eps=_LN2D_EPS, rngs=rngs, dtype=dtype),
            gelu,
            ConvTranspose2x2(dim // 4, dim // 8, rngs=rngs, dtype=dtype),
            gelu,
        ]
    )


def _obj_score_head(dim: int, use_mlp: bool, rngs: nnx.Rngs, dtype) -> nnx.Module:
    """The object-score head: a 3-layer MLP (``pred_obj_scores_mlp``) or one Linear."""
    if use_mlp:
        return MLP(dim, dim, 1, 3, rngs=rngs, dtype=dtype)
    return linear(dim, 1, axes=("embed", None), rngs=rngs, dtype=dtype)


class MaskDecoder(nnx.Module):
    """Predicts masks, IoU scores, output tokens and an object score.

    Constructor arguments follow the official ``MaskDecoder``; EfficientTAM
    builds it (``sam2_base._build_sam_heads``) with ``num_multimask_outputs=3``,
    ``iou_head_depth=3``, ``iou_head_hidden_dim=256``, ``use_high_res_features=False``,
    ``iou_prediction_use_sigmoid=True``, ``pred_obj_scores=True``,
    ``pred_obj_scores_mlp=True``, ``use_multimask_token_for_obj_ptr=True``; the
    official predictors (``build_sam2*`` with ``apply_postprocessing``) add
    ``dynamic_multimask_via_stability=True`` (delta 0.05, thresh 0.98).
    """

    def __init__(
        self,
        *,
        transformer_dim: int,
        transformer: TwoWayTransformer,
        rngs: nnx.Rngs,
        num_multimask_outputs: int = 3,
        iou_head_depth: int = 3,
        iou_head_hidden_dim: int = 256,
        use_high_res_features: bool = False,
        iou_prediction_use_sigmoid: bool = False,
        dynamic_multimask_via_stability: bool = False,
        dynamic_multimask_stability_delta: float = 0.05,
        dynamic_multimask_stability_thresh: float = 0.98,
        pred_obj_scores: bool = False,
        pred_obj_scores_mlp: bool = False,
        use_multimask_token_for_obj_ptr: bool = False,
        dtype=jnp.float32,
    ):
        dim = transformer_dim
        self.transformer_dim = dim
        self.transformer = transformer
        self.num_multimask_outputs = num_multimask_outputs
        self.num_mask_tokens = num_multimask_outputs + 1
        self.iou_token = embedding(1, dim, rngs=rngs)
        self.mask_tokens = embedding(self.num_mask_tokens, dim, rngs=rngs)
        self.pred_obj_scores = pred_obj_scores
        if pred_obj_scores:
            self.obj_score_token = embedding(1, dim, rngs=rngs)
        self.use_multimask_token_for_obj_ptr = use_multimask_token_for_obj_ptr
        self.output_upscaling = _output_upscaling(dim, rngs, dtype)
        self.use_high_res_features = use_high_res_features
        if use_high_res_features:
            self.conv_s0 = conv(dim, dim // 8, 1, rngs=rngs, dtype=dtype)
            self.conv_s1 = conv(dim, dim // 4, 1, rngs=rngs, dtype=dtype)
        self.output_hypernetworks_mlps = nnx.List(
            [
                MLP(dim, dim, dim // 8, 3, rngs=rngs, dtype=dtype)
                for _ in range(self.num_mask_tokens)
            ]
        )
        self.iou_prediction_head = MLP(
            dim,
            iou_head_hidden_dim,
            self.num_mask_tokens,
            iou_head_depth,
            sigmoid_output=iou_prediction_use_sigmoid,
            rngs=rngs,
            dtype=dtype,
        )
        if pred_obj_scores:
            self.pred_obj_score_head = _obj_score_head(dim, pred_obj_scores_mlp, rngs, dtype)
        self.dynamic_multimask_via_stability = dynamic_multimask_via_stability
        self.dynamic_multimask_stability_delta = dynamic_multimask_stability_delta
        self.dynamic_multimask_stability_thresh = dynamic_multimask_stability_thresh

    def __call__(
        self,
        image_embeddings: Float[Array, "bi g g c"],
        image_pe: Float[Array, "1 g g c"],
        sparse_prompt_embeddings: Float[Array, "b n c"],
        dense_prompt_embeddings: Float[Array, "b g g c"],
        multimask_output: bool,
        repeat_image: bool,
        high_res_features: tuple[jax.Array, jax.Array] | None = None,
        *,
        training: bool = False,
    ) -> tuple[
        Float[Array, "b m hm wm"], Float[Array, "b m"], Float[Array, "b t c"], Float[Array, "b 1"]
    ]:
        """As ``MaskDecoder.forward``, channel-last inputs.

        Args:
          image_embeddings: ``[B, g, g, C]`` (``[1, g, g, C]`` with ``repeat_image``).
          image_pe: ``[1, g, g, C]`` (``PromptEncoder.get_dense_pe()``).
          sparse_prompt_embeddings: ``[B, N, C]``.
          dense_prompt_embeddings: ``[B, g, g, C]``.
          multimask_output: static; return the 3 multimask outputs, else one.
          repeat_image: static; repeat the image batch once per prompt row (as
            ``torch.repeat_interleave(image, B)``).
          high_res_features: with ``use_high_res_features``, the projected
            ``(feat_s0 [B, 4g, 4g, C/8], feat_s1 [B, 2g, 2g, C/4])``.
          training: as torch's ``self.training``; disables the stability fallback.

        Returns:
          masks ``[B, M, 4g, 4g]`` logits, iou_pred ``[B, M]`` (M = 3 or 1),
          sam_tokens_out ``[B, 3 or 1, C]``, object_score_logits ``[B, 1]``.
        """
        masks, iou_pred, mask_tokens_out, object_score_logits = self.predict_masks(
            image_embeddings,
            image_pe,
            sparse_prompt_embeddings,
            dense_prompt_embeddings,
            repeat_image,
            high_res_features,
        )
        if multimask_output:
            masks, iou_pred = masks[:, 1:], iou_pred[:, 1:]
        elif self.dynamic_multimask_via_stability and not training:
            masks, iou_pred = self._dynamic_multimask_via_stability(masks, iou_pred)
        else:
            masks, iou_pred = masks[:, 0:1], iou_pred[:, 0:1]
        # As MaskDecoder.forward: the single-mask token is the object token unless
        # multimask output is on and the multimask tokens are configured for it.
        if multimask_output and self.use_multimask_token_for_obj_ptr:
            sam_tokens_out = mask_tokens_out[:, 1:]
        else:
            sam_tokens_out = mask_tokens_out[:, 0:1]
        return masks, iou_pred, sam_tokens_out, object_score_logits

    def _output_tokens(self) -> jax.Array:
        """``[T, C]``: (obj score,) IoU, mask tokens -- the order ``predict_masks`` uses."""
        tokens = [self.iou_token.embedding[...], self.mask_tokens.embedding[...]]
        if self.pred_obj_scores:
            tokens.insert(0, self.obj_score_token.embedding[...])
        return jnp.concatenate(tokens, axis=0)

    def _image_side(
        self,
        image_embeddings: jax.Array,
        image_pe: jax.Array,
        dense: jax.Array,
        batch: int,
        repeat_image: bool,
    ) -> tuple[jax.Array, jax.Array]:
        """The image tokens and their PE, expanded per prompt row (as ``predict_masks``)."""
        if image_pe.shape[0] != 1:
            raise EtamError(
                f"MaskDecoder: image_pe has batch {image_pe.shape[0]}, expected 1 (get_dense_pe())"
            )
        if repeat_image:
            src = jnp.repeat(image_embeddings, batch, axis=0)
        elif image_embeddings.shape[0] != batch:
            raise EtamError(
                f"MaskDecoder: image_embeddings batch {image_embeddings.shape[0]} "
                f"!= prompt batch {batch} "
                "(pass repeat_image=True to share one image)"
            )
        else:
            src = image_embeddings
        return src + dense, jnp.repeat(image_pe, batch, axis=0)

    def _upscale(
        self, src: jax.Array, high_res_features: tuple[jax.Array, jax.Array] | None
    ) -> jax.Array:
        """``[B, g, g, C]`` -> ``[B, 4g, 4g, C/8]`` through ``output_upscaling``."""
        if not self.use_high_res_features:
            for layer in self.output_upscaling:
                src = layer(src)
            return src
        if high_res_features is None:
            raise EtamError(
                "MaskDecoder: use_high_res_features is set but high_res_features is None"
            )
        dc1, ln1, act1, dc2, act2 = self.output_upscaling
        feat_s0, feat_s1 = high_res_features
        upscaled = act1(ln1(dc1(src) + feat_s1))
        return act2(dc2(upscaled) + feat_s0)

    def predict_masks(
        self,
        image_embeddings: jax.Array,
        image_pe: jax.Array,
        sparse_prompt_embeddings: jax.Array,
        dense_prompt_embeddings: jax.Array,
        repeat_image: bool,
        high_res_features: tuple[jax.Array, jax.Array] | None = None,
        sparse_mask: jax.Array | None = None,
    ) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
        """Every output token's result (as ``MaskDecoder.predict_masks``).

        ``sparse_mask`` ``[B, N]`` (bool, None: all) marks the sparse prompt
        tokens that exist: the others are left out of every attention, as if
        the batch held a different number of prompt tokens per row.

        Returns:
          masks ``[B, T, 4g, 4g]``, IoUs ``[B, T]``, mask tokens ``[B, T, C]``
          (T = ``num_mask_tokens``) and object-score logits ``[B, 1]``.
        """
        b = sparse_prompt_embeddings.shape[0]
        output_tokens = self._output_tokens()
        output_tokens = jnp.broadcast_to(output_tokens[None], (b, *output_tokens.shape))
        tokens = jnp.concatenate(
            [output_tokens, sparse_prompt_embeddings.astype(output_tokens.dtype)], axis=1
        )
        src, pos_src = self._image_side(
            image_embeddings, image_pe, dense_prompt_embeddings, b, repeat_image
        )
        g_h, g_w = src.shape[1:3]
        token_mask = None
        if sparse_mask is not None:
            token_mask = jnp.concatenate(
                [jnp.ones(output_tokens.shape[:2], bool), sparse_mask.astype(bool)], axis=1
            )
        hs, src = self.transformer(src, pos_src, tokens, token_mask)
        s = int(self.pred_obj_scores)
        iou_token_out = hs[:, s]
        mask_tokens_out = hs[:, s + 1 : s + 1 + self.num_mask_tokens]
        upscaled = self._upscale(
            rearrange(src, "b (h w) c -> b h w c", h=g_h, w=g_w), high_res_features
        )
        hyper_in = jnp.stack(
            [mlp(mask_tokens_out[:, i]) for i, mlp in enumerate(self.output_hypernetworks_mlps)],
            axis=1,
        )
        masks = jnp.einsum("bmc,bhwc->bmhw", hyper_in, upscaled)
        iou_pred = self.iou_prediction_head(iou_token_out)
        if self.pred_obj_scores:
            object_score_logits = self.pred_obj_score_head(hs[:, 0])
        else:
            object_score_logits = jnp.full((b, 1), _NO_OBJ_HEAD_LOGIT, iou_pred.dtype)
        return masks, iou_pred, mask_tokens_out, object_score_logits

    def _get_stability_scores(self, mask_logits: Float[Array, "b m h w"]) -> Float[Array, "b m"]:
        """IoU of the masks thresholded at +delta and -delta (as ``_get_stability_scores``)."""
        delta = self.dynamic_multimask_stability_delta
        area_i = jnp.sum(mask_logits > delta, axis=(-2, -1)).astype(jnp.float32)
        area_u = jnp.sum(mask_logits > -delta, axis=(-2, -1)).astype(jnp.float32)
        return jnp.where(area_u > 0, area_i / jnp.maximum(area_u, 1.0), 1.0)

    def _dynamic_multimask_via_stability(
        self, all_mask_logits: Float[Array, "b t h w"], all_iou_scores: Float[Array, "b t"]
    ) -> tuple[Float[Array, "b 1 h w"], Float[Array, "b 1"]]:
        """Single-mask output, replaced by the best (highest predicted IoU) multimask
        output where it is unstable (as ``_dynamic_multimask_via_stability``)."""
        multimask_iou = all_iou_scores[:, 1:]
        best = jnp.argmax(multimask_iou, axis=-1)[:, None]  # first maximum, as torch.argmax
        best_logits = jnp.take_along_axis(all_mask_logits[:, 1:], best[:, :, None, None], axis=1)
        best_iou = jnp.take_along_axis(multimask_iou, best, axis=1)
        single_logits, single_iou = all_mask_logits[:, 0:1], all_iou_scores[:, 0:1]
        is_stable = (
            self._get_stability_scores(single_logits) >= self.dynamic_multimask_stability_thresh
        )
        return (
            jnp.where(is_stable[..., None, None], single_logits, best_logits),
            jnp.where(is_stable, single_iou, best_iou),
        )


def build_mask_decoder(
    hidden_dim: int = 256,
    *,
    mlp_dim: int = 2048,
    iou_head_hidden_dim: int = 256,
    rngs: nnx.Rngs,
    dynamic_multimask_via_stability: bool = False,
    dtype=jnp.float32,
) -> MaskDecoder:
    """The mask decoder exactly as EfficientTAM builds it (``sam2_base._build_sam_heads``
    with the shipped yamls); pass ``dynamic_multimask_via_stability=True`` for the
    official predictors' post-processing (``build_sam2*(apply_postprocessing=True)``).
    ``mlp_dim`` / ``iou_head_hidden_dim`` are fixed at 2048 / 256 in the official
    code; smaller values only make smaller models (the demo's)."""
    transformer = TwoWayTransformer(
        depth=2, embedding_dim=hidden_dim, num_heads=8, mlp_dim=mlp_dim, rngs=rngs, dtype=dtype
    )
    return MaskDecoder(
        transformer_dim=hidden_dim,
        transformer=transformer,
        num_multimask_outputs=3,
        iou_head_depth=3,
        iou_head_hidden_dim=iou_head_hidden_dim,
        use_high_res_features=False,
        iou_prediction_use_sigmoid=True,
        dynamic_multimask_via_stability=dynamic_multimask_via_stability,
        pred_obj_scores=True,
        pred_obj_scores_mlp=True,
        use_multimask_token_for_obj_ptr=True,
        rngs=rngs,
        dtype=dtype,
    )
