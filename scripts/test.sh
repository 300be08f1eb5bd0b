#!/usr/bin/env bash
# Sets up ./.venv (scripts/setup.sh) and runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
exec python -m pytest -q -n 2 --dist loadfile "$@"
