"""Shared fixtures: one small synthetic dataset of every kind per test session (import them)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from data_pipelines import synthetic

SEED = 7


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``root/{sa1b,sav,sav_eval,davis}`` written with the writers' defaults and `SEED`."""
    root = tmp_path_factory.mktemp("synth")
    synthetic.write_all(root, seed=SEED)
    return root


def edit_json(path: Path, edit: Callable[[dict], object]) -> None:
    """Rewrites the json file ``path`` after ``edit(meta)`` changed its dict in place."""
    meta = json.loads(path.read_text())
    edit(meta)
    path.write_text(json.dumps(meta))
