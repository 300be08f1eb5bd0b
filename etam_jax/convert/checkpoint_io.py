"""Reading and writing model weights: the one loader behind every ``--checkpoint``.

A checkpoint is any of

- an official ``{"model": state_dict}`` ``.pt`` file;
- an etam weights directory (what ``etam convert from-pytorch`` writes):
  ``params/``, an Orbax ``StandardCheckpointer`` tree of the model's
  ``nnx.Param`` and ``Buffer`` values in Flax layouts, and
  ``etam_checkpoint.json``: ``{"model": NAME, "format": FORMAT}``;
- an ``etam train`` checkpoint (`etam_jax.training.checkpoints`): the run's
  workdir or its ``checkpoints/`` folder (the latest step), or one step folder
  ``checkpoints/<step>``. Only the ``params`` of the saved ``TrainState`` are
  read (no optimizer state); its ``meta`` names the model and, for runs since
  ``model_config`` was recorded, holds the model config it trained, so
  `load_model` rebuilds that architecture (a reduced or pooled variant too).

torch is imported only inside the ``.pt`` functions.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp
from flax import nnx
from flax.traverse_util import flatten_dict, unflatten_dict

from etam_jax.convert.naming import load_torch_arrays
from etam_jax.errors import EtamError
from etam_jax.models.variables import Buffer

FORMAT = "etam-params-v1"
META_FILE = "etam_checkpoint.json"
WEIGHTS = (nnx.Param, Buffer)


def read_pt(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """The state dict of an official ``{"model": state_dict}`` .pt file as numpy arrays."""
    import torch  # only the converter needs torch

    path = Path(path)
    if not path.is_file():
        raise EtamError(f"{path}: no such checkpoint file")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many kinds on a bad file
        raise EtamError(
            f"{path}: not a readable PyTorch checkpoint ({type(e).__name__}: {e})"
        ) from e
    if not isinstance(ckpt, Mapping) or "model" not in ckpt:
        keys = sorted(ckpt)[:8] if isinstance(ckpt, Mapping) else type(ckpt).__name__
        raise EtamError(f"{path}: no 'model' entry; top-level keys: {keys}")
    return {k: v.detach().cpu().numpy() for k, v in ckpt["model"].items()}


def write_pt(arrays: Mapping[str, np.ndarray], path: str | os.PathLike) -> None:
    """Writes ``{"model": state_dict}`` atomically (a temp file renamed into place)."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state_dict = {k: torch.from_numpy(np.array(v, order="C", copy=True)) for k, v in arrays.items()}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save({"model": state_dict}, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def save_orbax(model: nnx.Module, model_name: str, out_dir: str | os.PathLike) -> None:
    """Saves the model's weights as an Orbax directory, atomically.

    Written into a sibling temp directory first and renamed, so a failure
    never leaves a half-written ``out_dir``. An existing ``out_dir`` is an error.
    """
    out_dir = Path(out_dir).absolute()
    if out_dir.exists():
        raise EtamError(f"{out_dir}: already exists; refusing to overwrite")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}."))
    try:
        weights = nnx.to_pure_dict(nnx.state(model, WEIGHTS))
        with ocp.StandardCheckpointer() as checkpointer:
            checkpointer.save(tmp / "params", weights)
            checkpointer.wait_until_finished()
        (tmp / META_FILE).write_text(json.dumps({"model": model_name, "format": FORMAT}) + "\n")
        os.replace(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def read_orbax_meta(ckpt_dir: str | os.PathLike) -> dict:
    meta_path = Path(ckpt_dir) / META_FILE
    if not meta_path.is_file():
        raise EtamError(f"{ckpt_dir}: not an etam weights directory (no {META_FILE})")
    return json.loads(meta_path.read_text())


def load_orbax(model: nnx.Module, model_name: str, ckpt_dir: str | os.PathLike) -> None:
    """Restores weights saved by :func:`save_orbax` into ``model`` (in place)."""
    meta = read_orbax_meta(ckpt_dir)
    if meta.get("model") != model_name:
        raise EtamError(
            f"{ckpt_dir}: holds weights of model {meta.get('model')!r}, not {model_name!r}"
        )
    state = nnx.state(model, WEIGHTS)
    target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), nnx.to_pure_dict(state))
    with ocp.StandardCheckpointer() as checkpointer:
        try:
            restored = checkpointer.restore(Path(ckpt_dir).absolute() / "params", target)
        except (ValueError, KeyError) as e:
            raise EtamError(f"{ckpt_dir}: weights do not fit model {model_name!r}: {e}") from e
    nnx.replace_by_pure_dict(state, restored)
    nnx.update(model, state)


# The layout of an `etam train` checkpoint (etam_jax/training/checkpoints.py).
TRAIN_SUBDIR, TRAIN_STATE, TRAIN_META = "checkpoints", "state", "meta"


def training_step_dir(path: str | os.PathLike) -> Path | None:
    """The step folder of a training checkpoint ``path`` names (a workdir, its
    ``checkpoints/`` or one step folder; the latest step), or None if ``path``
    is not one. EtamError for a ``checkpoints/`` folder without a step."""
    path = Path(path)
    if (path / TRAIN_STATE).is_dir() and (path / TRAIN_META).is_dir():
        return path
    folder = path / TRAIN_SUBDIR if (path / TRAIN_SUBDIR).is_dir() else path
    if not folder.is_dir() or (folder is path and path.name != TRAIN_SUBDIR):
        return None
    # Orbax writes a step under a temporary name: an all-digit folder is complete.
    steps = [(int(p.name), p) for p in folder.iterdir() if p.name.isdigit() and p.is_dir()]
    if not steps:
        raise EtamError(f"{folder}: no training checkpoint (expected step folders such as 1000/)")
    return max(steps)[1]


def read_training_meta(step_dir: str | os.PathLike) -> dict:
    """The ``meta`` item of a training step folder: ``{"model", "config", "step", ...}``."""
    path = Path(step_dir).absolute() / TRAIN_META
    with ocp.Checkpointer(ocp.JsonCheckpointHandler()) as checkpointer:
        try:
            meta = checkpointer.restore(path)
        except (OSError, ValueError) as e:
            raise EtamError(f"{path}: unreadable training checkpoint record ({e})") from e
    if not isinstance(meta, dict) or "model" not in meta:
        raise EtamError(f"{path}: not an etam training checkpoint record: {meta!r}")
    return meta


def read_training_params(step_dir: str | os.PathLike) -> dict:
    """The ``params`` of a training step's TrainState as a nested dict of numpy arrays.

    Only that subtree is read (Orbax partial restore: no optimizer state); nnx's
    ``{"value": array}`` wrapping of each variable is removed.
    """
    path = Path(step_dir).absolute() / TRAIN_STATE
    with ocp.PyTreeCheckpointer() as checkpointer:
        tree = checkpointer.metadata(path).item_metadata.tree
        if "params" not in tree:
            raise EtamError(f"{path}: not a TrainState checkpoint (top-level keys {sorted(tree)})")
        target = jax.tree.map(lambda m: np.zeros(m.shape, m.dtype), tree["params"])
        restore = jax.tree.map(lambda m: ocp.RestoreArgs(restore_type=np.ndarray), tree["params"])
        args = ocp.args.PyTreeRestore(
            item={"params": target}, restore_args={"params": restore}, partial_restore=True
        )
        params = checkpointer.restore(path, args=args)["params"]
    is_variable = lambda x: isinstance(x, dict) and set(x) == {"value"}  # noqa: E731
    return jax.tree.map(lambda x: x["value"] if is_variable(x) else x, params, is_leaf=is_variable)


def fill_weights(model: nnx.Module, params: dict, source: str) -> None:
    """Sets every weight of ``model`` from the nested dict ``params`` (list indices
    as strings or ints); a missing weight or another shape is an EtamError."""
    state = nnx.state(model, WEIGHTS)
    want = flatten_dict(nnx.to_pure_dict(state))
    got = {tuple(map(str, k)): v for k, v in flatten_dict(params).items()}
    key = lambda path: tuple(map(str, path))  # noqa: E731
    missing = [".".join(key(k)) for k in want if key(k) not in got]
    wrong = [
        ".".join(key(k)) for k, v in want.items() if key(k) in got and got[key(k)].shape != v.shape
    ]
    if missing or wrong:
        raise EtamError(
            f"{source}: weights do not fit the model: missing {missing[:4]}, other shape {wrong[:4]}"
        )
    nnx.replace_by_pure_dict(state, unflatten_dict({k: got[key(k)] for k in want}))
    nnx.update(model, state)


def load_weights(model: nnx.Module, model_name: str | None, path: str | os.PathLike) -> None:
    """Loads any checkpoint (see the module docstring) into ``model``, in place.

    ``model_name``: the model the caller built; a weights directory or training
    checkpoint recording another name is an error. None: no name check (the
    weights must still fit, key by key and shape by shape).
    """
    path = Path(path)
    if path.is_file():
        load_torch_arrays(model, read_pt(path), source=str(path))
        return
    if not path.exists():
        raise EtamError(
            f"{path}: no such checkpoint (expected a .pt file, an etam weights "
            "directory or an etam train workdir / checkpoint step)"
        )
    if (path / META_FILE).is_file():
        load_orbax(model, model_name or read_orbax_meta(path)["model"], path)
        return
    step_dir = training_step_dir(path)
    if step_dir is None:
        raise EtamError(
            f"{path}: not a checkpoint (no {META_FILE}, no {TRAIN_SUBDIR}/ or "
            f"{TRAIN_STATE}/); expected a .pt file, an etam weights directory or an "
            "etam train workdir / checkpoint step"
        )
    meta = read_training_meta(step_dir)
    if model_name is not None and meta["model"] != model_name:
        raise EtamError(
            f"{step_dir}: a training checkpoint of model {meta['model']!r}, not {model_name!r}"
        )
    fill_weights(model, read_training_params(step_dir), str(step_dir))


def checkpoint_model_config(path: str | os.PathLike):
    """The model config a training checkpoint recorded (an ``ml_collections.ConfigDict``),
    or None (another kind of checkpoint, or a run from before it was recorded)."""
    import ml_collections

    path = Path(path)
    if not path.is_dir() or (path / META_FILE).is_file():
        return None
    step_dir = training_step_dir(path)
    config = read_training_meta(step_dir).get("model_config") if step_dir else None
    return ml_collections.ConfigDict(config) if config else None


def load_model(
    model_name: str | None,
    checkpoint: str | os.PathLike,
    image_size: int | None = None,
    apply_postprocessing: bool = False,
) -> nnx.Module:
    """The model with weights from any checkpoint (see the module docstring).

    Built abstractly (no random init) and filled from the checkpoint. A training
    checkpoint that recorded its model config is rebuilt as it trained (its
    recorded name must equal ``model_name`` unless that is None); any other
    checkpoint needs the official ``model_name``. ``image_size`` overrides the
    model's; ``apply_postprocessing`` is the official predictors' mask-decoder
    fallback.
    """
    from etam_jax.models.build import abstract_model  # the model imports nothing from here

    arch = checkpoint_model_config(checkpoint)
    if arch is None and model_name is None:
        raise EtamError(f"{checkpoint}: records no model config; name the model (--model)")
    model = abstract_model(
        arch if arch is not None else model_name,
        image_size=image_size,
        apply_postprocessing=apply_postprocessing,
    )
    load_weights(model, model_name, checkpoint)
    return model
