"""Every official config builds with the official keys, shapes and parameter count."""

import json
from pathlib import Path

import pytest

from etam_jax.convert.naming import iter_leaves
from etam_jax.models.build import abstract_model, count_params
from etam_jax.models.configs import MODEL_NAMES

REFERENCE = (
    Path(__file__).resolve().parents[3] / "shared" / "reference" / "official_state_dicts.json"
)
# The pooled _ti variants have exactly efficienttam_ti's keys (EFFICIENTTAM.md).
SAME_KEYS = {
    "efficienttam_ti_1": "efficienttam_ti",
    "efficienttam_ti_2": "efficienttam_ti",
}


@pytest.fixture(scope="module")
def official():
    return json.loads(REFERENCE.read_text())


# Tracing a full model takes ~10 s here; the variants (same modules, other
# sizes or pooling) run as `slow` (still in CI).
NAMES = [
    name
    if name in ("efficienttam_ti", "efficienttam_s")
    else pytest.param(name, marks=pytest.mark.slow)
    for name in MODEL_NAMES
]
HEADLINE = {"efficienttam_ti": 17_866_018, "efficienttam_s": 34_055_842}


@pytest.mark.parametrize("name", NAMES)
def test_keys_shapes_and_count_match_official(official, name):
    ref = official[SAME_KEYS.get(name, name)]
    model = abstract_model(name)
    ours = {leaf.torch_key: list(leaf.torch_shape) for leaf in iter_leaves(model)}
    expected = {k: list(v) for k, v in ref["state_dict"].items()}
    assert sorted(set(ours) - set(expected)) == [] and sorted(set(expected) - set(ours)) == []
    assert {k: v for k, v in ours.items() if v != expected[k]} == {}
    assert count_params(model) == ref["total_params"]
    assert count_params(model) == HEADLINE.get(name, ref["total_params"])


def _official_at_width(width: int):
    """The official efficienttam_ti yaml with every hidden-width field set to ``width``
    (what a narrower SAM2Base needs; the decoder's MLP stays the official 2048)."""
    from omegaconf import OmegaConf

    from tests.official_reference import official_config

    cfg = official_config("efficienttam_ti", 64)
    m = cfg.model
    m.image_encoder.neck.d_model = width
    m.image_encoder.neck.position_encoding.num_pos_feats = width
    m.memory_attention.d_model = m.memory_attention.layer.d_model = width
    m.memory_attention.layer.dim_feedforward = 2 * width
    m.memory_attention.layer.self_attention.embedding_dim = width
    m.memory_attention.layer.cross_attention.embedding_dim = width
    OmegaConf.update(m, "memory_encoder.in_dim", width, force_add=True)
    OmegaConf.update(m, "memory_encoder.mask_downsampler.embed_dim", width, force_add=True)
    m.memory_encoder.fuser.layer.dim = width
    return cfg


def test_a_narrower_hidden_width_has_the_official_keys_and_shapes():
    from hydra.utils import instantiate

    from etam_jax.models.configs import get_model_config

    width = 128
    official = instantiate(_official_at_width(width).model, _recursive_=True)
    expected = {k: list(v.shape) for k, v in official.state_dict().items()}
    cfg = get_model_config("efficienttam_ti", 64)
    cfg.image_encoder.d_model = cfg.memory_attention.d_model = width
    cfg.memory_attention.dim_feedforward = 2 * width
    ours = {leaf.torch_key: list(leaf.torch_shape) for leaf in iter_leaves(abstract_model(cfg))}
    assert ours == expected
    assert count_params(abstract_model(cfg)) == sum(p.numel() for p in official.parameters())


def test_widths_that_cannot_fit_together_name_the_fields():
    from etam_jax.errors import EtamError
    from etam_jax.models.configs import get_model_config

    cfg = get_model_config("efficienttam_ti", 64)
    cfg.memory_attention.d_model = 128
    with pytest.raises(
        EtamError, match=r"memory_attention.d_model \(128\).*image_encoder.d_model \(256\)"
    ):
        abstract_model(cfg)
    cfg.image_encoder.d_model = cfg.memory_attention.d_model = 96
    with pytest.raises(EtamError, match=r"multiple of model.memory_encoder.out_dim \(64\)"):
        abstract_model(cfg)
