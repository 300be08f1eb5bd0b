"""Serialized StableHLO of the video tracker's steps, for serving without this package.

Four entry points, the whole streaming pipeline of ``inference/video_predictor.py``
for a fixed number of objects B (one compiled program each, as ``models/tracker.py``):

- ``encode_image``: normalised image [1, S, S, 3] -> frame ``features``, ``pos`` [1, g, g, 256].
- ``prompt_points``: N clicks on an initial conditioning frame, for one object
  (``Tracker.prompt(is_init_cond=True)``; a box is points labelled 2, 3 first;
  coordinates in model pixels, ``x * S / W``).
- ``commit``: writes the consolidated masks of a frame into the memory bank
  (``Tracker.commit``).
- ``propagate``: one tracked frame for every object (``Tracker.propagate``):
  new bank and the SAM outputs.

Every function takes ``(params, inputs)``: ``params`` is a dict of the model's
weights by dotted path (the same names as in ``params.npz`` beside it) and
``inputs`` a dict of arrays; it returns a dict of arrays. Weights are explicit
inputs rather than baked-in constants because (1) one export then serves any
checkpoint of the same model (fine-tuned weights: rewrite ``params.npz``
only); (2) four programs would otherwise each embed the full weights; (3)
large constants make the StableHLO slow to serialise and compile.
``signatures.json`` lists every function's flat inputs and outputs (name,
shape, dtype) in the order of the serialized program's arguments and results.

Platforms: ``jax.export`` lowers for any of cpu/cuda/tpu from any machine,
but the model picks its CPU-only query blocking of long attentions
(``blocked_attention.auto_query_chunk``) from the backend it is traced on;
the result is the same, but for speed export on the backend you serve from.

    exported = ExportedTracker.load(out_dir)
    feats = exported.call("encode_image", {"image": image})
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from etam_jax.errors import EtamError
from etam_jax.models import memory_bank as mb
from etam_jax.models.tracker import FrameFeatures, Tracker

SIGNATURES = "signatures.json"
PARAMS = "params.npz"
FORMAT = "etam-stablehlo-v1"
ENTRY_POINTS = ("encode_image", "prompt_points", "commit", "propagate")


def as_dict(x: Any) -> dict[str, Any]:
    """A (flax struct) dataclass as a plain dict of its fields (serialisable pytree)."""
    return {f.name: getattr(x, f.name) for f in dataclasses.fields(x)}


def path_name(path: tuple) -> str:
    """Dotted name of a pytree path (``image_encoder.neck.convs.0.conv_1x1.kernel``)."""
    parts = []
    for key in path:
        if isinstance(key, jax.tree_util.GetAttrKey) and key.name == "value":
            continue  # nnx.Variable's array
        for attr in ("key", "idx", "name"):
            if hasattr(key, attr):
                parts.append(str(getattr(key, attr)))
                break
    return ".".join(parts)


def flat_params(state: nnx.State) -> dict[str, jax.Array]:
    """The model's variables as ``{dotted path: array}``."""
    return {path_name(p): leaf for p, leaf in jax.tree_util.tree_flatten_with_path(state)[0]}


def leaf_specs(tree: Any, prefix: str = "") -> list[dict[str, Any]]:
    """``[{name, shape, dtype}]`` of a pytree's leaves in flattening order."""
    return [
        {"name": prefix + path_name(p), "shape": list(leaf.shape), "dtype": str(leaf.dtype)}
        for p, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]
    ]


def _frame(inputs: Mapping[str, jax.Array]) -> FrameFeatures:
    return FrameFeatures(inputs["features"], inputs["pos"])


def entry_points(tracker: Tracker, state: nnx.State) -> dict[str, Callable]:
    """The exported functions ``fn(params_by_name, inputs) -> outputs`` (all dicts)."""
    names = list(flat_params(state))
    treedef = jax.tree.structure(state)

    def with_params(step: Callable) -> Callable:
        def fn(params: Mapping[str, jax.Array], inputs: Mapping[str, Any]) -> dict[str, Any]:
            return step(jax.tree.unflatten(treedef, [params[n] for n in names]), inputs)

        return fn

    def encode_image(p, x):
        return as_dict(tracker.encode_frame(p, x["image"]))

    def prompt_points(p, x):
        # An initial conditioning frame reads no memory: the bank, frame index and
        # direction do not matter (Tracker.prompt needs them only for their shapes).
        points = (x["point_coords"], x["point_labels"])
        out = tracker.prompt(p, tracker.empty_bank(1), _frame(x), 0, 1, False,
                             points=points, is_init_cond=True)  # fmt: skip
        return as_dict(out)

    def commit(p, x):
        masks = (x["low_res_masks"], x["obj_ptr"], x["is_cond"], x["write"])
        bank = tracker.commit(p, mb.MemoryBank(**x["bank"]), _frame(x), x["frame_idx"], *masks)
        return {"bank": as_dict(bank)}

    def propagate(p, x):
        bank, out = tracker.propagate(p, mb.MemoryBank(**x["bank"]), _frame(x), x["frame_idx"],
                                      x["num_frames"], x["reverse"], x["active"])  # fmt: skip
        return {"bank": as_dict(bank), "outputs": as_dict(out)}

    steps = (encode_image, prompt_points, commit, propagate)
    return {step.__name__: with_params(step) for step in steps}


def input_specs(tracker: Tracker, image_size: int, num_points: int) -> dict[str, dict]:
    """``ShapeDtypeStruct`` inputs of each entry point."""
    spec = jax.ShapeDtypeStruct
    b, g, s = tracker.num_objects, tracker.grid, image_size
    bank = as_dict(jax.eval_shape(tracker.empty_bank))
    frame = dict(features=spec((1, g, g, 256), jnp.float32), pos=spec((1, g, g, 256), jnp.float32))
    scalar = lambda dtype: spec((), dtype)  # noqa: E731
    when = dict(frame_idx=scalar(jnp.int32), num_frames=scalar(jnp.int32), reverse=scalar(bool))
    return {
        "encode_image": {"image": spec((1, s, s, 3), jnp.float32)},
        "prompt_points": dict(
            **frame,
            point_coords=spec((1, num_points, 2), jnp.float32),
            point_labels=spec((1, num_points), jnp.int32),
        ),
        "commit": dict(
            bank=bank,
            **frame,
            frame_idx=scalar(jnp.int32),
            low_res_masks=spec((b, 1, 4 * g, 4 * g), jnp.float32),
            obj_ptr=spec((b, tracker.ptr_dim), jnp.float32),
            is_cond=spec((b,), bool),
            write=spec((b,), bool),
        ),
        "propagate": dict(bank=bank, **frame, **when, active=spec((b,), bool)),
    }


def export_tracker(
    model: nnx.Module,
    model_name: str,
    out_dir: str,
    *,
    num_objects: int = 1,
    num_points: int = 1,
    platforms: tuple[str, ...] | None = None,
) -> dict[str, Any]:
    """Writes ``<entry>.stablehlo`` for every entry point, ``params.npz`` and ``signatures.json``.

    Args:
        model: an EfficientTAM built for video (``apply_postprocessing=True``) with weights.
        model_name: official name, recorded in the signatures.
        out_dir: an existing folder.
        num_objects: B, objects tracked together by ``commit``/``propagate``.
        num_points: N, clicks (box corners included) per ``prompt_points`` call.
        platforms: lowering platforms (default: the current JAX backend).

    Returns:
        The signatures written to ``signatures.json``.
    """
    tracker = Tracker(model, num_objects=num_objects)
    state = nnx.state(model)
    params = flat_params(state)
    param_specs = {n: jax.ShapeDtypeStruct(a.shape, a.dtype) for n, a in params.items()}
    specs = input_specs(tracker, model.image_size, num_points)
    functions = {}
    for name, fn in entry_points(tracker, state).items():
        # keep_unused: every program takes every weight, so all share one argument layout.
        jitted = jax.jit(fn, keep_unused=True)
        exported = jax.export.export(jitted, platforms=platforms)(param_specs, specs[name])
        with open(os.path.join(out_dir, f"{name}.stablehlo"), "wb") as f:
            f.write(exported.serialize())
        functions[name] = _signature(name, exported, specs[name])
    np.savez(os.path.join(out_dir, PARAMS), **{n: np.asarray(a) for n, a in params.items()})
    signatures = dict(
        format=FORMAT, model=model_name, image_size=model.image_size, num_objects=num_objects,
        num_points=num_points, num_cond_slots=tracker.num_cond_slots,
        num_recent=tracker.num_recent, platforms=list(exported.platforms),
        jax_version=jax.__version__, params_file=PARAMS, params=leaf_specs(params),
        functions=functions,
    )  # fmt: skip
    with open(os.path.join(out_dir, SIGNATURES), "w") as f:
        json.dump(signatures, f, indent=1)
    return signatures


def _signature(name: str, exported: jax.export.Exported, inputs: dict) -> dict[str, Any]:
    """File, inputs (after the ``len(params)`` weight arguments) and outputs of one function."""
    outputs = jax.tree.unflatten(exported.out_tree, exported.out_avals)
    return {
        "file": f"{name}.stablehlo",
        "params_first": True,  # the program's first arguments are "params" (sorted by name)
        "inputs": leaf_specs(inputs),
        "outputs": leaf_specs(outputs),
    }


class ExportedTracker:
    """An export folder loaded back: deserialized functions and the weights beside them."""

    def __init__(self, signatures: dict, functions: dict, params: dict[str, np.ndarray]):
        self.signatures, self.functions, self.params = signatures, functions, params

    @classmethod
    def load(cls, out_dir: str) -> ExportedTracker:
        """Reads ``signatures.json``, ``params.npz`` and every ``.stablehlo`` of `out_dir`."""
        path = os.path.join(out_dir, SIGNATURES)
        if not os.path.isfile(path):
            raise EtamError(f"{out_dir}: not an etam export folder (no {SIGNATURES})")
        with open(path) as f:
            signatures = json.load(f)
        functions = {}
        for name, sig in signatures["functions"].items():
            with open(os.path.join(out_dir, sig["file"]), "rb") as f:
                functions[name] = jax.export.deserialize(bytearray(f.read()))
        with np.load(os.path.join(out_dir, signatures["params_file"])) as npz:
            params = {k: npz[k] for k in npz.files}
        return cls(signatures, functions, params)

    def call(self, name: str, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """Runs entry point `name` on `inputs` (a dict as in ``signatures.json``)."""
        if name not in self.functions:
            raise EtamError(f"no exported function {name!r}; have {sorted(self.functions)}")
        return self.functions[name].call(self.params, dict(inputs))
