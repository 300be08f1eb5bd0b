"""Reading and writing model weights: official ``.pt`` files and our Orbax directories.

An Orbax weights directory (what ``etam convert from-pytorch`` writes) holds

- ``params/``: an Orbax ``StandardCheckpointer`` tree of the model's
  ``nnx.Param`` and ``Buffer`` values, in Flax layouts;
- ``etam_checkpoint.json``: ``{"model": NAME, "format": FORMAT}``.

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

from etam_jax.convert.naming import load_torch_arrays, to_torch_arrays
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
        raise EtamError(f"{path}: not a readable PyTorch checkpoint ({type(e).__name__}: {e})") from e
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
        raise EtamError(f"{ckpt_dir}: holds weights of model {meta.get('model')!r}, not {model_name!r}")
    state = nnx.state(model, WEIGHTS)
    target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), nnx.to_pure_dict(state))
    with ocp.StandardCheckpointer() as checkpointer:
        try:
            restored = checkpointer.restore(Path(ckpt_dir).absolute() / "params", target)
        except (ValueError, KeyError) as e:
            raise EtamError(f"{ckpt_dir}: weights do not fit model {model_name!r}: {e}") from e
    nnx.replace_by_pure_dict(state, restored)
    nnx.update(model, state)


def load_weights(model: nnx.Module, model_name: str, path: str | os.PathLike) -> None:
    """Loads an official ``.pt`` file or an etam Orbax directory into ``model``."""
    path = Path(path)
    if path.is_dir():
        load_orbax(model, model_name, path)
    elif path.exists():
        load_torch_arrays(model, read_pt(path), source=str(path))
    else:
        raise EtamError(f"{path}: no such checkpoint (expected a .pt file or an etam weights directory)")


def load_model(
    model_name: str,
    checkpoint: str | os.PathLike,
    image_size: int | None = None,
    apply_postprocessing: bool = False,
) -> nnx.Module:
    """The named model with weights from a ``.pt`` file or an etam Orbax directory.

    Built abstractly (no random init) and filled from the checkpoint.
    ``apply_postprocessing`` is the official predictors' mask-decoder fallback.
    """
    from etam_jax.models.build import abstract_model  # the model imports nothing from here

    model = abstract_model(model_name, image_size=image_size, apply_postprocessing=apply_postprocessing)
    load_weights(model, model_name, checkpoint)
    return model
