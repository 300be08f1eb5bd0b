"""Optimizer: labels of every efficienttam_ti parameter, schedules vs closed
form, and AdamW updates vs a hand-written numpy AdamW."""

import math

import jax
import numpy as np
import pytest
from flax import nnx

from etam_jax.errors import EtamError
from etam_jax.models.build import abstract_model
from etam_jax.training import optimizer as opt

# Multi-dimensional parameters that are position encodings or learned tokens
# without a ``pos``/``tokens`` logical axis (written out by hand).
_NO_WD_EMBEDDINGS = {"maskmem_tpos_enc", "no_mem_pos_enc", "no_mem_embed", "no_obj_ptr"}


def _names(module) -> list[str]:
    return [".".join(map(str, p)) for p, _ in nnx.to_flat_state(nnx.state(module, nnx.Param))]


def _expected_ti(model, cfg) -> dict[str, tuple[float, float]]:
    """(peak lr, weight decay) per parameter, from the module tree itself."""
    trunk = model.image_encoder.trunk
    depth = len(trunk.blocks)
    expected = {}
    for var_path, var in nnx.to_flat_state(nnx.state(model, nnx.Param)):
        name = ".".join(map(str, var_path))
        axes = var.get_metadata().get("out_sharding") or ()
        no_wd = (
            var.get_value().ndim == 1 or {"pos", "tokens"} & set(axes) or name in _NO_WD_EMBEDDINGS
        )
        lr = cfg.encoder_lr if name.startswith("image_encoder.") else cfg.lr
        expected[name] = (lr, 0.0 if no_wd else cfg.weight_decay)
    for i, block in enumerate(trunk.blocks):
        for name in _names(block):
            full = f"image_encoder.trunk.blocks.{i}.{name}"
            expected[full] = (
                cfg.encoder_lr * cfg.layer_decay ** (depth - i),
                expected[full][1],
            )
    for name in ["pos_embed", *(f"patch_embed.{n}" for n in _names(trunk.patch_embed))]:
        full = f"image_encoder.trunk.{name}"
        expected[full] = (
            cfg.encoder_lr * cfg.layer_decay ** (depth + 1),
            expected[full][1],
        )
    return expected


@pytest.fixture(scope="module")
def ti_model():
    return abstract_model("efficienttam_ti")


@pytest.mark.parametrize("preset", ["sa1b", "sav"])
def test_labels_of_every_efficienttam_ti_parameter(preset, ti_model):
    """The documented alternative to SAM 2.1's groups (the default, tested against
    SAM 2's own construction in test_optimizer_official.py): no decay on every
    1-D parameter, position encoding and token; ``pos_embed`` layer-decayed."""
    cfg = opt.get_optimizer_config(preset)
    cfg.update(
        no_weight_decay=opt.NO_WEIGHT_DECAY_EXTENDED, weight_decay_kept=(), layer_decay_overrides=()
    )
    model = ti_model
    params = nnx.state(model, nnx.Param)
    expected = _expected_ti(model, cfg)
    labels = {
        ".".join(map(str, p)): v.get_value()
        for p, v in nnx.to_flat_state(opt.param_labels(params, cfg))
    }
    assert sorted(labels) == sorted(expected)
    depth = len(model.image_encoder.trunk.blocks)
    assert depth == 12
    one_d = {n for n, v in nnx.to_flat_state(params) if v.get_value().ndim == 1}
    assert all(
        ".".join(map(str, n)).rsplit(".", 1)[-1] in ("bias", "scale", "gamma") for n in one_d
    )
    for name, label in labels.items():
        lr, wd = opt.label_lr_and_wd(label, cfg, depth)
        assert math.isclose(lr, expected[name][0], rel_tol=1e-12), (name, label)
        assert wd == expected[name][1], (name, label)
    assert labels["image_encoder.trunk.blocks.11.attn.qkv.kernel"] == "trunk_12/wd"
    assert labels["image_encoder.trunk.pos_embed"] == "trunk_0/no_wd"
    assert labels["sam_mask_decoder.mask_tokens.embedding"] == "rest/no_wd"
    # 13 trunk layer ids (0: pos/patch embed, 1-12: blocks; nothing else in the trunk), neck, rest.
    groups = {label.split("/")[0] for label in labels.values()}
    assert groups == {f"trunk_{k}" for k in range(13)} | {"encoder", "rest"}
    opt_state = jax.eval_shape(opt.make_optimizer(opt.for_run(cfg, 300_000), params).init, params)
    assert len(opt_state[1].inner_states) == len(set(labels.values()))


def test_cosine_schedule_closed_form():
    cfg = opt.get_optimizer_config("sav")
    cfg.update(warmup_steps=10, total_steps=110)
    schedule = opt.make_schedule(cfg, 2.0)
    for step in [0, 3, 10, 35, 60, 109, 110, 200]:
        if step < 10:
            want = 2.0 * step / 10
        else:
            t = min(step - 10, 100) / 100
            want = 0.2 + (2.0 - 0.2) * 0.5 * (1 + math.cos(math.pi * t))
        assert math.isclose(float(schedule(step)), want, rel_tol=1e-5, abs_tol=1e-7), step


def test_rsqrt_schedule_closed_form():
    cfg = opt.get_optimizer_config("sa1b")
    cfg.update(warmup_steps=10, total_steps=200, rsqrt_timescale=20, cooldown_steps=50)
    schedule = opt.make_schedule(cfg, 1.0)
    for step in [0, 4, 10, 30, 150, 175, 200]:
        warm = min(1.0, step / 10)
        decay = 1.0 if step <= 10 else 1 / math.sqrt((step - 10 + 20) / 20)
        cool = min(1.0, (200 - step) / 50)
        assert math.isclose(
            float(schedule(step)), warm * decay * cool, rel_tol=1e-5, abs_tol=1e-7
        ), step


def test_total_steps_follow_the_run_unless_set():
    """``optimizer.total_steps`` 0 (the presets') is the run's ``train.total_steps``;
    a non-zero value is kept; a cosine schedule of unknown length is refused."""
    cfg = opt.get_optimizer_config("sav")
    cfg.warmup_steps = 10
    assert cfg.total_steps == 0
    run = opt.for_run(cfg, 110)
    assert run.total_steps == 110 and cfg.total_steps == 0  # a copy
    assert math.isclose(float(opt.make_schedule(run, 2.0)(110)), 0.2, rel_tol=1e-5)
    cfg.total_steps = 60
    assert opt.for_run(cfg, 110).total_steps == 60
    assert math.isclose(float(opt.make_schedule(opt.for_run(cfg, 110), 2.0)(60)), 0.2, rel_tol=1e-5)
    cfg.total_steps = 0
    with pytest.raises(EtamError, match="optimizer.total_steps is 0.*train.total_steps"):
        opt.make_schedule(cfg, 2.0)
    with pytest.raises(EtamError, match=r"warmup_steps \(10\) must be below .* \(10: "):
        opt.make_schedule(opt.for_run(cfg, 10), 2.0)
    rsqrt = opt.get_optimizer_config("sa1b")  # no cooldown: needs no length
    assert float(opt.make_schedule(rsqrt, 1.0)(rsqrt.warmup_steps)) == pytest.approx(1.0)


def test_unknown_schedule_and_preset_fail_clearly():
    cfg = opt.get_optimizer_config()
    cfg.schedule = "linear"
    with pytest.raises(EtamError, match="optimizer.schedule.*'linear'"):
        opt.make_schedule(cfg, 1.0)
    with pytest.raises(EtamError, match="unknown optimizer preset 'sa2'"):
        opt.get_optimizer_config("sa2")


def _tiny_params(rng):
    def a(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    return {
        "image_encoder": {
            "trunk": {
                "pos_embed": a(1, 4, 3),
                "blocks": {
                    0: {"kernel": a(3, 3), "bias": a(3)},
                    1: {"kernel": a(3, 2)},
                },
            },
            "neck": {"kernel": a(2, 2)},
        },
        "sam_mask_decoder": {"kernel": a(2, 5), "norm": {"scale": a(5)}},
    }


def _numpy_adamw(params, grads_seq, cfg, lr_of, wd_of, schedule):
    """torch.optim.AdamW after clip_grad_norm_, written out."""
    flat = {k: v.astype(np.float64) for k, v in params.items()}
    m = {k: np.zeros_like(v) for k, v in flat.items()}
    v2 = {k: np.zeros_like(v) for k, v in flat.items()}
    for t, grads in enumerate(grads_seq, start=1):
        norm = math.sqrt(sum(float(np.sum(g.astype(np.float64) ** 2)) for g in grads.values()))
        scale = min(1.0, cfg.clip_norm / norm)
        for k in list(flat):
            g = grads[k] * scale
            m[k] = cfg.b1 * m[k] + (1 - cfg.b1) * g
            v2[k] = cfg.b2 * v2[k] + (1 - cfg.b2) * g * g
            m_hat, v_hat = m[k] / (1 - cfg.b1**t), v2[k] / (1 - cfg.b2**t)
            lr = lr_of[k] * schedule(t - 1)
            flat[k] = flat[k] - lr * (m_hat / (np.sqrt(v_hat) + cfg.eps) + wd_of[k] * flat[k])
    return flat


def test_adamw_steps_match_numpy():
    cfg = opt.get_optimizer_config("sav")
    cfg.update(lr=0.3, encoder_lr=0.1, layer_decay=0.5, warmup_steps=1, total_steps=5, eps=1e-6)
    rng = np.random.default_rng(0)
    params = _tiny_params(rng)
    # By hand: depth 2; blocks.i -> 0.1 * 0.5 ** (2 - i); pos_embed -> 0.1 (SAM 2.1's
    # override '*pos_embed*': 1.0), decayed (not a bias or a LayerNorm).
    lr_of = {
        "image_encoder.trunk.pos_embed": 0.1,
        "image_encoder.trunk.blocks.0.kernel": 0.1 * 0.25,
        "image_encoder.trunk.blocks.0.bias": 0.1 * 0.25,
        "image_encoder.trunk.blocks.1.kernel": 0.1 * 0.5,
        "image_encoder.neck.kernel": 0.1,
        "sam_mask_decoder.kernel": 0.3,
        "sam_mask_decoder.norm.scale": 0.3,
    }
    wd_of = {k: 0.0 if k.endswith(("bias", "scale")) else 0.1 for k in lr_of}

    def flat(tree):
        return {
            opt.path_name(p): np.asarray(x)
            for p, x in jax.tree_util.tree_flatten_with_path(tree)[0]
        }

    grads_seq = [
        jax.tree.map(lambda x: rng.standard_normal(x.shape).astype(np.float32), params)
        for _ in range(4)
    ]
    tx = opt.make_optimizer(cfg, params)
    state, got = tx.init(params), params
    for grads in grads_seq:
        updates, state = tx.update(grads, state, got)
        got = jax.tree.map(lambda p, u: p + u, got, updates)

    def schedule(step):  # warm-up 1 step, cosine to lr / 10 over 4
        return 0.0 if step < 1 else 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (step - 1) / 4))

    want = _numpy_adamw(flat(params), [flat(g) for g in grads_seq], cfg, lr_of, wd_of, schedule)
    for k, value in flat(got).items():
        # float32 Adam: an element with a tiny gradient carries ~1e-5 of lr in rounding.
        np.testing.assert_allclose(value, want[k], rtol=2e-5, atol=2e-5 * cfg.lr, err_msg=k)
    assert not np.allclose(
        flat(got)["image_encoder.trunk.pos_embed"],
        flat(params)["image_encoder.trunk.pos_embed"],
    )
