"""Experiment configs: a Python file's ``get_config()`` plus ``--config.a.b=value`` overrides.

As ml_collections' ``config_flags`` (big_vision, MaxText style) without absl's
global flag registry: ``experiments/configs/NAME.py[:ARG]`` is imported and
``get_config(ARG)`` returns a ConfigDict; overrides are parsed with the type of
the field they replace (bool, int, float, str, tuple/list via Python literals)
and the config is locked, so a typo fails here, before anything compiles,
naming the field.
"""

from __future__ import annotations

import ast
import importlib.util
import pathlib
from collections.abc import Sequence

import ml_collections

from etam_jax.errors import EtamError

PREFIX = "--config."


def load_module_config(spec: str) -> ml_collections.ConfigDict:
    """``path/to/file.py[:arg]`` -> ``get_config(arg)`` of that file."""
    path, _, arg = spec.partition(":")
    file = pathlib.Path(path)
    if not file.is_file():
        raise EtamError(f"config file {path} not found")
    module_spec = importlib.util.spec_from_file_location(f"etam_config_{file.stem}", file)
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except Exception as e:  # a user file: report which one failed and why
        raise EtamError(f"config file {path} failed to load: {type(e).__name__}: {e}") from e
    if not hasattr(module, "get_config"):
        raise EtamError(f"config file {path} has no get_config()")
    cfg = module.get_config(arg or None)
    if not isinstance(cfg, ml_collections.ConfigDict):
        raise EtamError(f"config file {path}: get_config() must return a ConfigDict")
    return cfg


def _parse(text: str, old, field: str):
    """``text`` as the type of the current value ``old``."""
    if isinstance(old, bool):
        low = text.lower()
        if low in ("true", "1", "yes"):
            return True
        if low in ("false", "0", "no"):
            return False
        raise EtamError(f"--config.{field}: expected true or false, found {text!r}")
    if isinstance(old, str) or old is None:
        return text
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError) as e:
        raise EtamError(f"--config.{field}: cannot parse {text!r} as {type(old).__name__}") from e
    if isinstance(old, float) and isinstance(value, int):
        value = float(value)
    if isinstance(old, (tuple, list)) and isinstance(value, (tuple, list)):
        return type(old)(value)
    if not isinstance(value, type(old)):
        raise EtamError(f"--config.{field}: expected {type(old).__name__}, found {text!r}")
    return value


def _lookup(cfg: ml_collections.ConfigDict, field: str):
    """(parent ConfigDict, last key) of a dotted field that must exist."""
    node, parts = cfg, field.split(".")
    for i, part in enumerate(parts):
        if not isinstance(node, ml_collections.ConfigDict) or part not in node:
            known = (
                ", ".join(sorted(node.keys()))
                if isinstance(node, ml_collections.ConfigDict)
                else ""
            )
            where = ".".join(parts[:i]) or "config"
            raise EtamError(
                f"unknown config field {field!r} (no {part!r} in {where}; known: {known})"
            )
        if i < len(parts) - 1:
            node = node[part]
    return node, parts[-1]


def apply_overrides(cfg: ml_collections.ConfigDict, overrides: Sequence[str]) -> None:
    """Apply ``--config.a.b=value`` strings (also ``--config.a.b value`` pre-joined)."""
    for item in overrides:
        if not item.startswith(PREFIX) or "=" not in item:
            raise EtamError(f"bad override {item!r}: expected --config.FIELD=VALUE")
        field, _, text = item[len(PREFIX) :].partition("=")
        parent, key = _lookup(cfg, field)
        if isinstance(parent[key], ml_collections.ConfigDict):
            raise EtamError(f"--config.{field} is a section; set one of its fields")
        with parent.ignore_type():
            parent[key] = _parse(text, parent[key], field)


def split_overrides(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """``(other args, overrides)``: ``--config.x=v`` and ``--config.x v`` forms."""
    rest, overrides, i = [], [], 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith(PREFIX) and "=" not in arg and i + 1 < len(argv):
            overrides.append(f"{arg}={argv[i + 1]}")
            i += 2
            continue
        (overrides if arg.startswith(PREFIX) else rest).append(arg)
        i += 1
    return rest, overrides


def load_config(spec: str, overrides: Sequence[str] = ()) -> ml_collections.ConfigDict:
    """The experiment config with overrides applied, then locked (no new fields)."""
    cfg = load_module_config(spec)
    apply_overrides(cfg, overrides)
    cfg.lock()
    return cfg
