#!/usr/bin/env bash
# Sets up ./.venv and runs the main job on built-in generated data (see scripts/demo.py).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
exec python scripts/demo.py "$@"
