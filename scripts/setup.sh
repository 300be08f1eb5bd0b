#!/usr/bin/env bash
# Creates ./.venv with etam-jax, its test tools and the official PyTorch reference.
# Idempotent: a second run only checks that everything is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
stamp=.venv/.etam-installed
if [ ! -f "$stamp" ] || [ setup.cfg -nt "$stamp" ] || [ scripts/setup.sh -nt "$stamp" ]; then
  python -m pip install -q --upgrade pip
  # torch pinned exactly: 2.13.0 is the CPU build on local disk; anything else pulls CUDA wheels.
  python -m pip install -q "torch==2.13.0"
  python -m pip install -q -e ".[dev]"
  # The official reference (module `sam2`) without its torchvision dependency,
  # which does not import beside this torch build and which the model does not need.
  python -m pip install -q hydra-core iopath
  python -m pip install -q --no-deps "efficient-track-anything==1.0"
  # SAM 2's training code (losses, optimizer, SAM2Train) for the training parity tests:
  # the sam2==1.1.0 sdist, installed as module `sam2_training_ref` (its own `sam2`
  # would clash with the one above). fvcore: its lr schedulers; tensordict and
  # tensorboard: imported at module level by its trainer and data utils.
  python -m pip install -q "fvcore==0.1.5.post20221221" "tensordict==0.15.3" tensorboard
  python scripts/install_sam2_training_ref.py
  touch "$stamp"
fi
