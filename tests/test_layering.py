"""The package's layering (issue 15.3), read from every module's imports (also lazy ones).

models: the bottom (nothing from inference, training or anything above);
training: nothing from inference, experiments or bench; library code
(etam_jax, data_pipelines) never imports tests.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

RULES = {
    "etam_jax/models": (
        "etam_jax.inference",
        "etam_jax.training",
        "etam_jax.evaluation",
        "etam_jax.bench",
        "etam_jax.sweep",
        "etam_jax.export",
        "etam_jax.convert",
        "etam_jax.cli",
        "data_pipelines",
        "experiments",
    ),
    "etam_jax/training": ("etam_jax.inference", "etam_jax.bench", "experiments"),
    "etam_jax": ("tests",),
    "data_pipelines": ("tests",),
}


def imported_modules(path: Path) -> set[str]:
    """Every module an ``import`` / ``from ... import`` names in the file, at any depth."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
    return names


@pytest.mark.parametrize("package", sorted(RULES))
def test_no_module_imports_from_above_its_layer(package):
    banned = RULES[package]
    files = sorted((ROOT / package).rglob("*.py"))
    assert files
    offenders = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in files
        for name in sorted(imported_modules(path))
        if any(name == b or name.startswith(b + ".") for b in banned)
    ]
    assert not offenders, "\n".join(offenders)


def test_the_checker_sees_lazy_imports(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from etam_jax.inference.overlay import overlay\n")
    assert "etam_jax.inference.overlay" in imported_modules(source)
