"""`etam bench train`: a tiny model's report (fields, consistency, FLOPs against hand counts)."""

import json
import statistics
import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest
from jax import lax

from etam_jax.cli import main as etam
from etam_jax.training.flops import jaxpr_flops
from tests.child_env import child_env

TINY = [
    "--config.model.image_size=64",
    "--config.model.image_encoder.trunk.depth=2",
    "--config.model.image_encoder.trunk.window_block_indexes=(0,)",
    "--config.model.memory_attention.num_layers=1",
    "--config.prompts.num_correction_pt_per_frame=1",
    "--config.data.sources.sav.batch_size=1",
    "--config.data.sources.sav.num_frames=2",
    "--config.data.sources.sav.max_objects=1",
]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """One clip-batch run of the tiny model (a subprocess: its compile memory goes with it)."""
    out = tmp_path_factory.mktemp("bench") / "train.json"
    argv = [
        "bench",
        "train",
        "--batch",
        "clip",
        "--mesh",
        "1,1,1",
        "--steps",
        "2",
        "--warmup",
        "1",
        "--out",
        str(out),
        *TINY,
    ]
    env = child_env(devices=2)  # compiled unoptimised: the step's FLOPs are unchanged
    run = subprocess.run(
        [sys.executable, "-m", "etam_jax.cli", *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert f"wrote {out}" in run.stdout and "clip  B1 T2 O1 64px" in run.stdout
    return argv, json.loads(out.read_text())


def test_report_fields(report):
    argv, rep = report
    assert rep["command"] == ["etam", *argv]
    assert rep["jax_backend"] == "cpu" and rep["device_kind"]
    assert (rep["warmup_steps"], rep["timed_steps"]) == (1, 2)
    (row,) = rep["results"]  # --batch clip: the image source is left out
    assert (row["config"], row["model"], row["batch"], row["sources"]) == (
        "demo",
        "efficienttam_ti",
        "clip",
        ["sav"],
    )
    assert (row["global_batch"], row["num_frames"], row["max_objects"], row["image_size"]) == (
        1,
        2,
        1,
        64,
    )
    assert row["mesh_shape"] == {"data": 1, "fsdp": 1, "tensor": 1} and row["num_devices"] == 1
    assert row["dtype"] == "float32" and row["finite"] and row["loss"] > 0
    assert (
        row["compile_s"] > 0 and len(row["step_times_s"]) == 2 and len(row["warmup_times_s"]) == 1
    )
    assert row["step_time_s"] == statistics.median(row["step_times_s"])
    assert row["examples_per_s"] == pytest.approx(row["global_batch"] / row["step_time_s"])
    assert row["achieved_flops_per_s"] == pytest.approx(
        row["model_flops_per_step"] / row["step_time_s"]
    )
    # No peak FLOP/s is known for a CPU: MFU is None, with the reason.
    assert row["mfu"] is None and row["mfu_xla"] is None and "cpu" in row["mfu_note"]
    assert row["peak_memory_per_device_mb"] > 100 and "RSS" in row["memory_source"]
    assert row["compiled_memory_mb"]["argument"] > 0


def test_flops_against_hand_estimate(report):
    """6 x params x tokens (forward + backward of every weight on every token, Kaplan et al.)."""
    row = report[1]["results"][0]
    tokens = (
        (row["image_size"] // 16) ** 2
        * row["num_frames"]
        * row["global_batch"]
        * row["max_objects"]
    )
    estimate = 6 * row["trainable_params"] * tokens
    assert estimate / 3 < row["model_flops_per_step"] < 3 * estimate
    # The trunk alone (forward + backward over every frame) is a lower bound on both counts.
    trunk = (
        6 * 1_000_000 * (row["image_size"] // 16) ** 2 * row["num_frames"]
    )  # ~1.07M trunk params
    assert row["model_flops_per_step"] > trunk and row["xla_flops_per_step_per_device"] > trunk


def test_jaxpr_flops_counts_by_hand():
    """Matmuls, (grouped) convolutions, scan trip counts, cond branches and gradients."""
    x, w = jnp.ones((8, 32)), jnp.ones((32, 16))
    mm = 2 * 8 * 32 * 16
    assert jaxpr_flops(jax.make_jaxpr(lambda x, w: x @ w)(x, w)) == mm

    def loop(x, w, n):
        return lax.scan(lambda c, _: (jnp.tanh(c @ w) @ w.T, None), x, None, length=n)[0]

    scan5 = jax.make_jaxpr(lambda x, w: loop(x, w, 5))(x, w)
    assert jaxpr_flops(scan5) == 5 * 2 * mm  # XLA's cost analysis counts the body once
    grad = jax.make_jaxpr(
        jax.grad(lambda x, w: jnp.sum(jax.jit(loop, static_argnums=2)(x, w, 3)), argnums=(0, 1))
    )(x, w)
    assert jaxpr_flops(grad) == 3 * 2 * mm * 3  # forward + d/dx + d/dw per matmul
    branchy = jax.make_jaxpr(lambda p, x, w: lax.cond(p, lambda: x @ w @ w.T, lambda: x))(
        True, x, w
    )
    assert jaxpr_flops(branchy) == 2 * mm  # the costlier branch
    img, k = jnp.ones((2, 10, 10, 4)), jnp.ones((3, 3, 1, 4))
    conv = lambda img, k: lax.conv_general_dilated(
        img, k, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=4
    )
    depthwise = 2 * (2 * 10 * 10 * 4) * 9
    assert jaxpr_flops(jax.make_jaxpr(conv)(img, k)) == depthwise
    # Input and weight gradients (the latter a batch-grouped conv) cost the forward each.
    assert (
        jaxpr_flops(
            jax.make_jaxpr(jax.grad(lambda i, k: jnp.sum(conv(i, k)), argnums=(0, 1)))(img, k)
        )
        == 3 * depthwise
    )


@pytest.mark.parametrize(
    "flags, expected",
    [
        (["--mesh", "2,x"], "--mesh: expected 3 positive sizes"),
        (["--steps", "0"], "--steps must be >= 1"),
        (["--frobnicate"], "unrecognized arguments: --frobnicate"),
        (["--dtype", "float16"], "invalid choice: 'float16'"),
        (["--model", "efficienttam_ti", "--config", "x.py"], "exclude each other"),
        (["--model", "nope"], "unknown model 'nope'"),
        (["--config.model.nope=1"], "unknown config field 'model.nope'"),
        (["--image-size", "100"], "multiple of 16, found 100"),
    ],
)
def test_bad_flags_one_line_error(flags, expected, capsys):
    assert etam(["bench", "train", *flags]) == 1
    err = capsys.readouterr().err
    assert expected in err and err.count("\n") == 1
