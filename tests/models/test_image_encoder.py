"""Parity of the neck and the whole image encoder with the official PyTorch modules."""

import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from flax import nnx
from hydra.utils import instantiate
from sam2.modeling.backbones.image_encoder import ViTDetNeck as OfficialNeck
from sam2.modeling.position_encoding import PositionEmbeddingSine as OfficialSine

from etam_jax.convert.naming import load_torch_arrays
from etam_jax.errors import EtamError
from etam_jax.models.configs import get_model_config
from etam_jax.models.image_encoder import ImageEncoder
from etam_jax.models.neck import ViTDetNeck
from tests.official_reference import (
    copy_weights,
    official_config,
    randomize_,
    relative_error,
    state_dict_numpy,
    to_torch,
)

# A small trunk whose 10x10 grid is not a multiple of the window (4): padded
# window attention in blocks 0 and 2, global attention in block 1, and the
# 14x14 pretrain pos-embed resized to 10x10.
SMALL_TRUNK = dict(embed_dim=48, depth=3, num_heads=3, window_size=4, window_block_indexes=[0, 2])


def jit_apply(module: nnx.Module, *args):
    """``module(*args)`` under ``jax.jit`` (split/merge), as the model is used."""
    graphdef, state = nnx.split(module)
    return jax.jit(lambda s, *a: nnx.merge(graphdef, s)(*a))(state, *args)


def _to_nchw(x) -> torch.Tensor:
    return to_torch(x).permute(0, 3, 1, 2)


def _to_nhwc(x: torch.Tensor) -> np.ndarray:
    return x.permute(0, 2, 3, 1).numpy()


@pytest.mark.parametrize("neck_norm", ["LN", None])
def test_neck_matches_official(neck_norm):
    official = OfficialNeck(OfficialSine(64), 64, [48], neck_norm=neck_norm)
    randomize_(official, seed=7)
    with nnx.use_eager_sharding(False):
        ours = nnx.eval_shape(lambda: ViTDetNeck(64, [48], neck_norm=neck_norm, rngs=nnx.Rngs(0)))
    copy_weights(ours, official)
    x = np.random.default_rng(0).standard_normal((2, 6, 9, 48)).astype(np.float32)
    with torch.no_grad():
        (ref,), (ref_pos,) = official([_to_nchw(x)])
    out, pos = jit_apply(ours, x)
    assert relative_error(out, _to_nhwc(ref)) < 1e-5
    assert relative_error(pos, _to_nhwc(ref_pos)) < 1e-6


def _encoder_pair(name: str, image_size: int, seed: int, dtype=jnp.float32, **trunk):
    """The official ImageEncoder (hydra, from the yaml) and ours, with the same random weights."""
    cfg = official_config(name, image_size).model.image_encoder
    cfg.trunk.update(trunk)
    if "embed_dim" in trunk:
        cfg.neck.backbone_channel_list = [trunk["embed_dim"]]
    official = instantiate(cfg, _recursive_=True).eval()
    randomize_(official, seed)
    ours_cfg = get_model_config(name, image_size)
    ours_cfg.image_encoder.trunk.update(
        {k: tuple(v) if isinstance(v, list) else v for k, v in trunk.items()}
    )
    # Built abstractly (no init compiles): every variable is then set from the official weights.
    with nnx.use_eager_sharding(False):
        ours = nnx.eval_shape(lambda: ImageEncoder(ours_cfg, rngs=nnx.Rngs(0), dtype=dtype))
    load_torch_arrays(ours, state_dict_numpy(official, "image_encoder."), prefix="image_encoder.")
    return ours, official


def _official_outputs(official, images: np.ndarray) -> dict[str, np.ndarray]:
    with torch.no_grad():
        out = official(_to_nchw(images))
    assert len(out["backbone_fpn"]) == len(out["vision_pos_enc"]) == 1
    assert out["backbone_fpn"][0] is out["vision_features"]
    return {
        "vision_features": _to_nhwc(out["vision_features"]),
        "vision_pos_enc": _to_nhwc(out["vision_pos_enc"][0]),
    }


def _images(size: int, batch: int = 1) -> np.ndarray:
    return np.random.default_rng(size).standard_normal((batch, size, size, 3)).astype(np.float32)


def test_small_image_encoder_matches_official():
    ours, official = _encoder_pair("efficienttam_ti", 160, seed=8, **SMALL_TRUNK)
    images = _images(160, batch=2)
    ref = _official_outputs(official, images)
    out = jit_apply(ours, images)
    for key in ref:
        assert out[key].shape == (2, 10, 10, 256)
        assert relative_error(out[key], ref[key]) < 1e-5, key


def test_small_image_encoder_bfloat16_compute():
    ours, official = _encoder_pair(
        "efficienttam_ti", 160, seed=8, dtype=jnp.bfloat16, **SMALL_TRUNK
    )
    images = _images(160)
    ref = _official_outputs(official, images)
    out = jit_apply(ours, images)
    assert jax.tree.map(lambda x: x.dtype, out) == dict.fromkeys(ref, jnp.bfloat16)
    # bfloat16 keeps 8 mantissa bits: ~1e-2 of the features' scale after a few blocks.
    for key in ref:
        assert relative_error(out[key], ref[key]) < 5e-2, key


def test_image_encoder_rejects_wrong_size():
    cfg = get_model_config("efficienttam_ti", 64)
    cfg.image_encoder.trunk.update(embed_dim=48, depth=2, window_block_indexes=(0,))
    with nnx.use_eager_sharding(False):  # built concretely: the initialisers run too
        ours = ImageEncoder(cfg, rngs=nnx.Rngs(0), dtype=jnp.bfloat16)
    # Parameters stay float32 whatever the compute dtype.
    assert {leaf.dtype for leaf in jax.tree.leaves(nnx.state(ours))} == {jnp.dtype(jnp.float32)}
    with pytest.raises(EtamError, match="64, 64, 3"):
        ours(np.zeros((1, 32, 32, 3), np.float32))


@pytest.mark.slow
def test_efficienttam_ti_image_encoder_matches_official_at_1024():
    ours, official = _encoder_pair("efficienttam_ti", 1024, seed=9)
    images = _images(1024)
    ref = _official_outputs(official, images)
    graphdef, state = nnx.split(ours)
    encode = jax.jit(lambda s, x: nnx.merge(graphdef, s)(x))
    start = time.perf_counter()
    compiled = encode.lower(state, images).compile()
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    out = jax.block_until_ready(compiled(state, images))
    run_s = time.perf_counter() - start
    errors = {key: relative_error(out[key], ref[key]) for key in ref}
    print(f"efficienttam_ti @1024: compile {compile_s:.1f}s, run {run_s:.2f}s, errors {errors}")
    for key, err in errors.items():
        assert out[key].shape == (1, 64, 64, 256)
        # Measured ~3e-6 (12 blocks, 4096-token attention, float32); 2e-5 leaves margin.
        assert err < 2e-5, key
