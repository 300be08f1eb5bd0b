"""Installs SAM 2's training code (sdist ``sam2==1.1.0``) as package ``sam2_training_ref``.

The parity tests of the losses and the optimizer (tests/official_training_reference.py)
compare ours with SAM 2's ``training/`` package (``loss_fns``, ``optimizer``,
``model/sam2.py``). That package only ships in the ``sam2`` sdist, whose top-level
module ``sam2`` clashes with efficient-track-anything's (the inference reference).
So this script takes the sdist from the package index and installs its ``sam2/`` and
``training/`` folders, unchanged but for their import lines, as
``sam2_training_ref.sam2`` and ``sam2_training_ref.training`` in the running
interpreter's site-packages. The installed ``sam2`` is never touched and nothing
of the sdist enters our repository.

Rewrites (every other byte is the sdist's):

- ``from sam2...`` / ``from training...`` -> ``from sam2_training_ref.sam2...`` / ``...training...``;
  ``import sam2`` -> ``from sam2_training_ref import sam2``;
- ``initialize_config_module("sam2")`` names ``sam2_training_ref.sam2``;
- ``_target_: sam2.`` / ``_target_: training.`` in the yaml configs likewise;
- ``sam2/__init__.py`` (whose only statement points Hydra's global config module
  at ``sam2``) becomes empty, so importing the reference never changes which
  configs efficient-track-anything's ``build_sam`` composes from.

The CUDA extension is not built (``SAM2_BUILD_CUDA=0``); ``sam2.utils.misc``
already falls back when ``_C`` is missing. Usage: ``python
scripts/install_sam2_training_ref.py [--sdist PATH]``; without ``--sdist`` the
sdist is downloaded with pip (cached in ``<venv>/.cache``) and its sha256 checked.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
from pathlib import Path

VERSION = "1.1.0"
SDIST = f"sam2-{VERSION}.tar.gz"
SHA256 = "7e0ea252d43c10d853e3acfce0b5770ac683c30481bd6de311300e9d44f45b74"
PACKAGE = "sam2_training_ref"
FOLDERS = ("sam2", "training")

_PY_RULES = (
    (re.compile(r"^(\s*)from (sam2|training)(?=[.\s])", re.M), rf"\1from {PACKAGE}.\2"),
    (re.compile(r"^(\s*)import sam2\s*$", re.M), rf"\1from {PACKAGE} import sam2"),
    (
        re.compile(r"initialize_config_module\(\"sam2\""),
        f'initialize_config_module("{PACKAGE}.sam2"',
    ),
)
_YAML_RULE = (re.compile(r"(_target_:\s*)(sam2|training)\."), rf"\1{PACKAGE}.\2.")
# Any import of the clashing names left after the rewrite is an error.
_LEFT_OVER = re.compile(r"^\s*(from|import)\s+(sam2|training)\b", re.M)

_INIT = f'''"""SAM 2's training code from the ``sam2=={VERSION}`` sdist, imports renamed.

Installed by etam-jax's scripts/install_sam2_training_ref.py for parity tests;
``sam2_training_ref.sam2`` and ``sam2_training_ref.training`` are the sdist's
``sam2`` and ``training`` packages (LICENSE beside this file).
"""

__version__ = "{VERSION}"
'''
_SAM2_INIT = (
    "# Emptied by etam-jax's installer: the sdist's __init__ only pointed Hydra's global\n"
    "# config module at `sam2` (efficient-track-anything's module of that name).\n"
)


def _download(cache: Path) -> Path:
    path = cache / SDIST
    if not path.exists():
        cache.mkdir(parents=True, exist_ok=True)
        # An sdist's metadata is built to resolve it: with the venv's torch and
        # setuptools (no isolated build env, which would pull a CUDA torch) and no
        # CUDA extension.
        env = {**os.environ, "SAM2_BUILD_CUDA": "0"}
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "-q",
            "--no-deps",
            "--no-binary",
            ":all:",
            "--no-build-isolation",
            f"sam2=={VERSION}",
            "-d",
            str(cache),
        ]
        subprocess.run(cmd, check=True, env=env)
    return path


def _check_sha256(path: Path) -> None:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != SHA256:
        raise SystemExit(f"{path}: sha256 {digest}, expected {SHA256} (sam2=={VERSION} sdist)")


def rewrite(name: str, text: str) -> str:
    """The file ``name`` (path inside the package) with its imports renamed."""
    if name == "sam2/__init__.py":
        return _SAM2_INIT
    if name.endswith(".py"):
        for pattern, repl in _PY_RULES:
            text = pattern.sub(repl, text)
        left = _LEFT_OVER.search(text)
        if left:
            raise SystemExit(f"{SDIST}: {name}: import not renamed: {left.group(0).strip()!r}")
    elif name.endswith((".yaml", ".yml")):
        text = _YAML_RULE[0].sub(_YAML_RULE[1], text)
    return text


def _extract(sdist: Path, dest: Path) -> None:
    root = f"sam2-{VERSION}/"
    with tarfile.open(sdist) as tar:
        for member in tar.getmembers():
            name = member.name.removeprefix(root)
            if not member.isfile() or not name.startswith(tuple(f + "/" for f in FOLDERS)):
                continue
            if name.endswith(".cu"):
                continue
            data = tar.extractfile(member).read()
            out = dest / name
            out.parent.mkdir(parents=True, exist_ok=True)
            if name.endswith((".py", ".yaml", ".yml")):
                out.write_text(rewrite(name, data.decode("utf-8")), encoding="utf-8")
            else:
                out.write_bytes(data)
        license_file = tar.extractfile(root + "LICENSE").read()
    (dest / "LICENSE").write_bytes(license_file)
    (dest / "__init__.py").write_text(_INIT, encoding="utf-8")


def install(sdist: Path, site: Path) -> Path:
    """Installs ``sdist`` as ``site/sam2_training_ref`` (replacing any earlier one)."""
    _check_sha256(sdist)
    target = site / PACKAGE
    with tempfile.TemporaryDirectory(dir=site, prefix=f".{PACKAGE}-") as tmp:
        staged = Path(tmp) / PACKAGE
        _extract(sdist, staged)
        if target.exists():
            shutil.rmtree(target)
        staged.rename(target)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sdist", type=Path, help=f"a local {SDIST} (default: pip download)")
    args = parser.parse_args()
    sdist = args.sdist or _download(Path(sys.prefix) / ".cache")
    print(f"installed {install(sdist, Path(sysconfig.get_paths()['purelib']))}")


if __name__ == "__main__":
    main()
