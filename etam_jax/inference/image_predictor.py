"""The image predictor: SAM-style prompting of EfficientTAM on one image.

A port of the official ``sam2_image_predictor.SAM2ImagePredictor``: set an
image once (the image encoder runs once, jitted), then predict masks from
points, a box and/or a low-res mask input, one or three masks with predicted
IoUs. Coordinates are original-image pixels, normalised to the model
resolution exactly as ``SAM2Transforms.transform_coords``. Outputs are the
official ones: masks at the original size, IoU predictions and the clamped
``[M, 4g, 4g]`` low-res logits (4g = 256 at 1024) to feed back as
``mask_input``.

Several objects go through one compiled call when their prompts have the same
shape (as the official batched ``predict``); ``predict_objects`` groups
objects by prompt shape so every result equals the official single-object
call. Compilations: one encoder per (model, resolution); one decoder per
(batch, prompt tokens, mask or not, multimask); one upsampler per image size.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from etam_jax.errors import EtamError
from etam_jax.inference.image_transforms import preprocess_image, transform_coords
from etam_jax.models import prompt_labels
from etam_jax.models.resize import resize_bilinear

LOW_RES_CLAMP = 32.0  # _predict clamps the returned low-res logits to [-32, 32]


@dataclasses.dataclass(frozen=True)
class ObjectPrompt:
    """One object's prompts, in original-image pixels (any may be None).

    Attributes:
      points: ``[N, 2]`` (x, y); labels: ``[N]`` 1 foreground / 0 background.
      box: ``[4]`` (x0, y0, x1, y1).
      mask_input: ``[1, 4g, 4g]`` low-res mask logits (or probabilities); see
        :func:`~etam_jax.inference.image_transforms.mask_input_from_binary` for a
        full-size binary mask.
    """

    points: np.ndarray | None = None
    labels: np.ndarray | None = None
    box: np.ndarray | None = None
    mask_input: np.ndarray | None = None


def _encode(
    graphdef: nnx.GraphDef, state: nnx.State, no_mem_embed: jax.Array, images: jax.Array
) -> jax.Array:
    """As ``SAM2ImagePredictor.set_image``: features + ``no_mem_embed``, ``[1, g, g, C]``."""
    features = nnx.merge(graphdef, state)(images)["vision_features"]
    return features + no_mem_embed[0]  # directly_add_no_mem_embed ([1, 1, C] -> [1, C])


def _decode(
    graphdef: nnx.GraphDef,
    state: nnx.State,
    image_embed: jax.Array,
    coords: jax.Array | None,
    labels: jax.Array | None,
    mask_input: jax.Array | None,
    multimask_output: bool,
) -> tuple[jax.Array, jax.Array]:
    """As ``SAM2ImagePredictor._predict`` up to the mask decoder.

    Args:
      graphdef, state: of ``(sam_prompt_encoder, sam_mask_decoder)``.
      image_embed: ``[1, g, g, C]``.
      coords, labels: ``[B, N, 2]`` model-resolution pixels (box corners
        first), ``[B, N]`` int32; or None.
      mask_input: ``[B, 4g, 4g, 1]`` or None.
      multimask_output: static.

    Returns:
      low-res logits ``[B, M, 4g, 4g]`` and IoU predictions ``[B, M]``.
    """
    prompt_encoder, mask_decoder = nnx.merge(graphdef, state)
    points = None if coords is None else (coords, labels)
    sparse, dense = prompt_encoder(points=points, boxes=None, masks=mask_input)
    low_res, ious, _, _ = mask_decoder(
        image_embed,
        prompt_encoder.get_dense_pe(),
        sparse,
        dense,
        multimask_output=multimask_output,
        repeat_image=sparse.shape[0] > 1,  # several objects share the one image
    )
    return low_res, ious


@functools.partial(jax.jit, static_argnames=("size",))
def _upsample(low_res_bmhw: jax.Array, size: tuple[int, int]) -> jax.Array:
    # As SAM2Transforms.postprocess_masks: plain bilinear straight to the original size.
    return resize_bilinear(low_res_bmhw, size)


class ImagePredictor:
    """Predicts masks for prompts on one image at a time (``SAM2ImagePredictor``).

    Args:
      model: an ``EfficientTAM`` with weights (its mask decoder's
        ``dynamic_multimask_via_stability`` decides the single-mask fallback,
        as ``build_sam2(apply_postprocessing=...)`` does for the official one).
      mask_threshold: logits above it are foreground (official default 0).
    """

    def __init__(self, model: nnx.Module, mask_threshold: float = 0.0):
        self.image_size = int(model.image_size)
        self.mask_input_size = int(model.sam_prompt_encoder.mask_input_size[0])
        self.mask_threshold = mask_threshold
        encoder_def, self._encoder = nnx.split(model.image_encoder)
        self._no_mem_embed = model.no_mem_embed[...]
        heads_def, self._heads = nnx.split((model.sam_prompt_encoder, model.sam_mask_decoder))
        self._encode = jax.jit(functools.partial(_encode, encoder_def))
        self._decode = jax.jit(
            functools.partial(_decode, heads_def), static_argnames=("multimask_output",)
        )
        self._image_embed: jax.Array | None = None
        self._orig_hw: tuple[int, int] | None = None

    def set_image(self, image: np.ndarray) -> None:
        """Encodes ``image`` (``[H, W, 3]`` uint8 RGB) for the following predictions."""
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise EtamError(
                "set_image: expected an [H, W, 3] uint8 RGB image, "
                f"found {image.shape} {image.dtype}"
            )
        self._orig_hw = (int(image.shape[0]), int(image.shape[1]))
        images = preprocess_image(image, self.image_size)
        self._image_embed = self._encode(self._encoder, self._no_mem_embed, images)

    def get_image_embedding(self) -> jax.Array:
        """The current image's ``[1, g, g, C]`` embedding (with ``no_mem_embed``)."""
        if self._image_embed is None:
            raise EtamError("ImagePredictor: call set_image(...) before predicting")
        return self._image_embed

    def set_image_embedding(self, image_embed: jax.Array, orig_hw: tuple[int, int]) -> None:
        """Reuses :meth:`get_image_embedding` (same encoder) for an image of size ``orig_hw``."""
        self._image_embed, self._orig_hw = image_embed, (int(orig_hw[0]), int(orig_hw[1]))

    @property
    def orig_hw(self) -> tuple[int, int]:
        if self._orig_hw is None:
            raise EtamError("ImagePredictor: call set_image(...) before predicting")
        return self._orig_hw

    def predict(
        self,
        point_coords: np.ndarray | None = None,
        point_labels: np.ndarray | None = None,
        box: np.ndarray | None = None,
        mask_input: np.ndarray | None = None,
        multimask_output: bool = True,
        return_logits: bool = False,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """As ``SAM2ImagePredictor.predict`` (``normalize_coords=True``).

        Args:
          point_coords: ``[N, 2]`` or batched ``[B, N, 2]`` (x, y) pixels.
          point_labels: ``[N]`` / ``[B, N]``: 1 foreground, 0 background, -1 padding.
          box: ``[4]`` or ``[B, 4]`` (x0, y0, x1, y1) pixels.
          mask_input: ``[1, 4g, 4g]`` / ``[B, 1, 4g, 4g]`` low-res logits.
          multimask_output: three masks instead of one.
          return_logits: return logits instead of 0/1 masks.

        Returns:
          masks ``[M, H, W]`` float32 (0/1, or logits), IoU predictions ``[M]``,
          low-res logits ``[M, 4g, 4g]`` (each with a leading ``B`` when B > 1).
        """
        coords, labels, masks = self._prep_prompts(point_coords, point_labels, box, mask_input)
        out = self._predict(coords, labels, masks, multimask_output, return_logits)
        return tuple(x[0] if x.shape[0] == 1 else x for x in out)

    def predict_objects(
        self,
        prompts: Sequence[ObjectPrompt],
        multimask_output: bool = True,
        return_logits: bool = False,
        pad_points_to: int | None = None,
    ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """Predicts each object as :meth:`predict` would alone, batching equal prompt shapes.

        Args:
          prompts: one :class:`ObjectPrompt` per object.
          pad_points_to: pad every object's clicks (box corners included) to this
            many with label -1, so all objects share one compiled call; the
            result then equals the official predictor given those padding
            points, which is close to but not the same as without them.

        Returns:
          per object, ``(masks [M, H, W], ious [M], low_res [M, 4g, 4g])``.
        """
        prepared = [self._prep_prompts(p.points, p.labels, p.box, p.mask_input) for p in prompts]
        if pad_points_to is not None:
            prepared = [(*_pad_points(c, l, pad_points_to), m) for c, l, m in prepared]
        groups: dict[tuple, list[int]] = {}
        for i, (coords, _, mask) in enumerate(prepared):
            groups.setdefault(
                (None if coords is None else coords.shape[1], mask is not None), []
            ).append(i)
        results: list = [None] * len(prompts)
        for members in groups.values():
            stacked = [_concat([prepared[i][k] for i in members]) for k in range(3)]
            out = self._predict(*stacked, multimask_output, return_logits)
            for row, i in enumerate(members):
                results[i] = tuple(x[row] for x in out)
        return results

    def _prep_prompts(self, point_coords, point_labels, box, mask_input):
        """As ``_prep_prompts`` + the box merge of ``_predict``: box corners first, labels 2/3.

        Returns:
          coords ``[B, N, 2]`` float32 model pixels, labels ``[B, N]`` int32
          (both None without points and box), mask ``[B, 4g, 4g, 1]`` or None.
        """
        coords = labels = None
        if point_coords is not None:
            if point_labels is None:
                raise EtamError("predict: point_labels must be given with point_coords")
            coords = transform_coords(point_coords, self.orig_hw, self.image_size)
            labels = np.asarray(point_labels, np.int32)
            if coords.ndim == 2:
                coords, labels = coords[None], labels[None]
        if box is not None:
            corners = transform_coords(np.reshape(box, (-1, 2, 2)), self.orig_hw, self.image_size)
            box_labels = np.broadcast_to(
                np.array(prompt_labels.BOX, np.int32), (corners.shape[0], 2)
            )
            coords = corners if coords is None else np.concatenate([corners, coords], axis=1)
            labels = box_labels if labels is None else np.concatenate([box_labels, labels], axis=1)
        return coords, labels, self._prep_mask(mask_input)

    def _prep_mask(self, mask_input: np.ndarray | None) -> np.ndarray | None:
        if mask_input is None:
            return None
        mask = np.asarray(mask_input, np.float32)
        mask = mask[None] if mask.ndim == 3 else mask
        s = self.mask_input_size
        if mask.ndim != 4 or mask.shape[1:] != (1, s, s):
            raise EtamError(
                f"predict: mask_input must be [1, {s}, {s}] or [B, 1, {s}, {s}], "
                f"found {np.shape(mask_input)}"
            )
        return np.moveaxis(mask, 1, -1)  # [B, 4g, 4g, 1]: channel-last for the prompt encoder

    def decode(
        self,
        coords: np.ndarray | None,
        labels: np.ndarray | None,
        mask_input: np.ndarray | None = None,
        multimask_output: bool = True,
    ) -> tuple[jax.Array, jax.Array]:
        """The prompt encoder and mask decoder alone (``_predict`` before upsampling).

        Args:
          coords: ``[B, N, 2]`` float32 model-resolution pixels (see
            :func:`~etam_jax.inference.image_transforms.transform_coords`).
          labels: ``[B, N]`` int32 (box corners 2/3 first, then 1/0, -1 padding).
          mask_input: ``[B, 4g, 4g, 1]`` low-res logits or None.
          multimask_output: three masks instead of one.

        Returns:
          unclamped low-res logits ``[B, M, 4g, 4g]`` and IoU predictions ``[B, M]``.
        """
        return self._decode(
            self._heads, self.get_image_embedding(), coords, labels, mask_input, multimask_output
        )

    def _predict(self, coords, labels, mask, multimask_output: bool, return_logits: bool):
        """Decoder, upsampling to the original size, clamping and thresholding (``_predict``)."""
        low_res, ious = self.decode(coords, labels, mask, multimask_output)
        masks = _upsample(low_res, self.orig_hw)
        if not return_logits:
            masks = (masks > self.mask_threshold).astype(jnp.float32)
        low_res = jnp.clip(low_res, -LOW_RES_CLAMP, LOW_RES_CLAMP)
        return np.asarray(masks), np.asarray(ious), np.asarray(low_res)


def _pad_points(coords, labels, n: int):
    """Pads ``[B, N, 2]`` / ``[B, N]`` to ``n`` points with (0, 0) labelled -1."""
    if coords is None or coords.shape[1] == n:
        return coords, labels
    if coords.shape[1] > n:
        raise EtamError(
            f"predict_objects: an object has {coords.shape[1]} points, more than pad_points_to={n}"
        )
    extra = n - coords.shape[1]
    coords = np.concatenate([coords, np.zeros((coords.shape[0], extra, 2), np.float32)], axis=1)
    labels = np.concatenate(
        [labels, np.full((labels.shape[0], extra), prompt_labels.PAD, np.int32)], axis=1
    )
    return coords, labels


def _concat(arrays: list[np.ndarray | None]) -> np.ndarray | None:
    return None if arrays[0] is None else np.concatenate(arrays, axis=0)
