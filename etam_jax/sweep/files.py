"""Files of the sweep: atomic writes (a killed run never leaves a half-written result),
JSON reads with errors naming the file, Python files imported by path."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import tempfile
from pathlib import Path
from types import ModuleType

from etam_jax.errors import EtamError


def write_text(path: Path, text: str) -> None:
    """Writes ``text`` to ``path`` through a sibling temp file renamed into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_json(path: Path, record: dict) -> None:
    """``record`` as indented JSON, atomically."""
    write_text(path, json.dumps(record, indent=1, sort_keys=True) + "\n")


def read_json(path: Path) -> dict:
    """A JSON object from ``path``; EtamError naming the file if missing or malformed."""
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise EtamError(f"{path}: cannot read JSON ({type(e).__name__}: {e})") from e
    if not isinstance(record, dict):
        raise EtamError(f"{path}: expected a JSON object, found {type(record).__name__}")
    return record


def import_file(path: Path, function: str) -> ModuleType:
    """Imports the Python file at ``path``; EtamError unless it defines ``function``."""
    if not path.is_file():
        raise EtamError(f"{path}: no such file (paths are relative to the checkout root)")
    spec = importlib.util.spec_from_file_location(f"etam_file_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses in the file look their module up there
    spec.loader.exec_module(module)
    if not hasattr(module, function):
        raise EtamError(f"{path}: must define {function}()")
    return module
