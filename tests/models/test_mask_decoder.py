"""Parity of the mask decoder (and prompt encoder -> decoder) with the official modules."""

import jax
import numpy as np
import pytest
import torch
from flax import nnx
from sam2.modeling.sam.mask_decoder import MaskDecoder as OfficialMaskDecoder
from sam2.modeling.sam.transformer import TwoWayTransformer as OfficialTwoWayTransformer

from etam_jax.errors import EtamError
from etam_jax.models.mask_decoder import MaskDecoder, build_mask_decoder
from etam_jax.models.prompt_encoder import build_prompt_encoder
from etam_jax.models.two_way_transformer import TwoWayTransformer
from tests.official_reference import (
    build_official,
    copy_weights,
    randomize_,
    relative_error,
    to_torch,
)

IMAGE = 256
OUTPUTS = ("masks", "iou_pred", "sam_tokens_out", "object_score_logits")


@pytest.fixture(scope="module")
def heads():
    """Our prompt encoder and decoder; the official SAM2Base from the ti yaml at image 256."""
    official = build_official("efficienttam_ti", IMAGE, seed=5)
    with nnx.use_eager_sharding(False):
        encoder = build_prompt_encoder(IMAGE, rngs=nnx.Rngs(0))
        decoder = build_mask_decoder(rngs=nnx.Rngs(1))
    copy_weights(encoder, official.sam_prompt_encoder)
    copy_weights(decoder, official.sam_mask_decoder)
    return encoder, decoder, official


def _inputs(batch: int, grid: int, tokens: int, image_batch: int | None = None, seed: int = 0):
    rng = np.random.default_rng(seed)
    return dict(
        image_embeddings=rng.standard_normal((image_batch or batch, grid, grid, 256), np.float32),
        image_pe=rng.standard_normal((1, grid, grid, 256), np.float32),
        sparse_prompt_embeddings=rng.standard_normal((batch, tokens, 256), np.float32),
        dense_prompt_embeddings=rng.standard_normal((batch, grid, grid, 256), np.float32),
    )


def _nchw(x):
    return to_torch(np.asarray(x).transpose(0, 3, 1, 2))


def _run_official(official_decoder, inputs, multimask, repeat_image, high_res=None):
    with torch.no_grad():
        out = official_decoder(
            image_embeddings=_nchw(inputs["image_embeddings"]),
            image_pe=_nchw(inputs["image_pe"]),
            sparse_prompt_embeddings=to_torch(inputs["sparse_prompt_embeddings"]),
            dense_prompt_embeddings=_nchw(inputs["dense_prompt_embeddings"]),
            multimask_output=multimask,
            repeat_image=repeat_image,
            high_res_features=None if high_res is None else [_nchw(f) for f in high_res],
        )
    return [o.numpy() for o in out]


def _assert_matches(ours, ref, tol=1e-5):
    for name, a, b in zip(OUTPUTS, ours, ref):
        assert a.shape == b.shape, f"{name}: {a.shape} vs {b.shape}"
        err = relative_error(a, b)
        assert err < tol, f"{name}: relative error {err:.2e}"


# The stability fallback only acts on single-mask output.
@pytest.mark.parametrize("multimask,dynamic", [(True, False), (False, False), (False, True)])
def test_mask_decoder_matches_official(heads, multimask, dynamic):
    _, decoder, official = heads
    inputs = _inputs(batch=3, grid=IMAGE // 16, tokens=6)
    official.sam_mask_decoder.dynamic_multimask_via_stability = dynamic
    decoder.dynamic_multimask_via_stability = dynamic
    ref = _run_official(official.sam_mask_decoder, inputs, multimask, repeat_image=False)
    _assert_matches(decoder(**inputs, multimask_output=multimask, repeat_image=False), ref)


def test_repeat_image_matches_official(heads):
    _, decoder, official = heads
    inputs = _inputs(batch=3, grid=IMAGE // 16, tokens=4, image_batch=1, seed=1)
    ref = _run_official(official.sam_mask_decoder, inputs, True, repeat_image=True)
    _assert_matches(decoder(**inputs, multimask_output=True, repeat_image=True), ref)


def test_dynamic_fallback_takes_both_branches(heads):
    """A threshold between the rows' stability scores: some rows keep token 0, others fall back."""
    _, decoder, official = heads
    inputs = _inputs(batch=3, grid=IMAGE // 16, tokens=3, seed=2)
    ref_decoder = official.sam_mask_decoder
    with torch.no_grad():
        all_masks = ref_decoder.predict_masks(
            _nchw(inputs["image_embeddings"]),
            _nchw(inputs["image_pe"]),
            to_torch(inputs["sparse_prompt_embeddings"]),
            _nchw(inputs["dense_prompt_embeddings"]),
            False,
        )[0]
        scores = np.sort(ref_decoder._get_stability_scores(all_masks[:, 0:1]).numpy().ravel())
    assert scores[0] < scores[-1], "need rows with different stability scores"
    thresh = float(
        (scores[0] + scores[1]) / 2 if scores[0] < scores[1] else (scores[1] + scores[2]) / 2
    )
    ref_decoder.dynamic_multimask_via_stability = decoder.dynamic_multimask_via_stability = True
    ref_decoder.dynamic_multimask_stability_thresh = decoder.dynamic_multimask_stability_thresh = (
        thresh
    )
    try:
        ref = _run_official(ref_decoder, inputs, False, repeat_image=False)
        ours = decoder(**inputs, multimask_output=False, repeat_image=False)
    finally:
        ref_decoder.dynamic_multimask_stability_thresh = (
            decoder.dynamic_multimask_stability_thresh
        ) = 0.98
    _assert_matches(ours, ref)
    single = all_masks[:, 0:1].numpy()
    kept = [np.array_equal(r, s) for r, s in zip(ref[0], single)]
    assert any(kept) and not all(kept)


def test_high_res_no_obj_head_variant_matches_official():
    """The SAM 2 options EfficientTAM leaves off: high-res features, no object-score head."""
    kwargs = dict(transformer_dim=256, use_high_res_features=True, iou_prediction_use_sigmoid=False)
    official = OfficialMaskDecoder(transformer=OfficialTwoWayTransformer(2, 256, 8, 2048), **kwargs)
    randomize_(official, seed=6)
    with nnx.use_eager_sharding(False):
        rngs = nnx.Rngs(0)
        ours = MaskDecoder(
            transformer=TwoWayTransformer(2, 256, 8, 2048, rngs=rngs), rngs=rngs, **kwargs
        )
    copy_weights(ours, official.eval())
    grid, rng = IMAGE // 16, np.random.default_rng(3)
    inputs = _inputs(batch=2, grid=grid, tokens=5, seed=3)
    high_res = (
        rng.standard_normal((2, 4 * grid, 4 * grid, 32), np.float32),
        rng.standard_normal((2, 2 * grid, 2 * grid, 64), np.float32),
    )
    # Multimask output without use_multimask_token_for_obj_ptr: the token is still token 0.
    ref = _run_official(official, inputs, True, False, high_res)
    _assert_matches(
        ours(**inputs, multimask_output=True, repeat_image=False, high_res_features=high_res), ref
    )


def _official_prompts(points, boxes, masks):
    return (
        None if points is None else (to_torch(points[0]), to_torch(points[1])),
        None if boxes is None else to_torch(boxes),
        None if masks is None else _nchw(masks),
    )


@pytest.mark.parametrize("with_box,with_mask", [(False, False), (True, True)])
def test_prompt_encoder_to_decoder_matches_official(heads, with_box, with_mask):
    encoder, decoder, official = heads
    rng, grid = np.random.default_rng(4), IMAGE // 16
    points = (
        rng.uniform(0, IMAGE, (2, 3, 2)).astype(np.float32),
        np.array([[1, 0, -1], [1, 1, 0]], np.int32),
    )
    boxes = np.array([[10, 20, 200, 180], [50, 60, 90, 250]], np.float32) if with_box else None
    masks = (
        rng.standard_normal((2, 4 * grid, 4 * grid, 1)).astype(np.float32) if with_mask else None
    )
    image = rng.standard_normal((2, grid, grid, 256), np.float32)
    with torch.no_grad():
        sparse, dense = official.sam_prompt_encoder(*_official_prompts(points, boxes, masks))
        ref = official.sam_mask_decoder(
            _nchw(image), official.sam_prompt_encoder.get_dense_pe(), sparse, dense, True, False
        )
    graphdef, state = nnx.split((encoder, decoder))

    @jax.jit  # static shapes: the prompt encoder and decoder trace as one program
    def apply(state, image, points, boxes, masks):
        enc, dec = nnx.merge(graphdef, state)
        sparse, dense = enc(points, boxes, masks)
        return dec(
            image, enc.get_dense_pe(), sparse, dense, multimask_output=True, repeat_image=False
        )

    _assert_matches(apply(state, image, points, boxes, masks), [r.numpy() for r in ref])


def test_full_size_grid_64_matches_official_under_jit(heads):
    """1024-pixel input: grid 64, masks 256 x 256 (the decoder has no size-dependent weights),
    run as the tracker runs it: split once, merged inside ``jax.jit``."""
    _, decoder, official = heads
    inputs = _inputs(batch=2, grid=64, tokens=5, seed=7)
    ref = _run_official(official.sam_mask_decoder, inputs, True, repeat_image=False)
    graphdef, state = nnx.split(decoder)

    @jax.jit
    def apply(state, inputs):
        return nnx.merge(graphdef, state)(**inputs, multimask_output=True, repeat_image=False)

    _assert_matches(apply(state, inputs), ref)


def test_batch_mismatch_raises(heads):
    _, decoder, _ = heads
    inputs = _inputs(batch=2, grid=IMAGE // 16, tokens=2, image_batch=3)
    with pytest.raises(EtamError, match="repeat_image"):
        decoder(**inputs, multimask_output=True, repeat_image=False)
