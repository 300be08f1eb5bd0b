#!/usr/bin/env bash
# Sets up ./.venv (scripts/setup.sh) and runs the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
. .venv/bin/activate
# Style first (pyproject.toml [tool.ruff]: 100 columns): a second to fail on.
ruff format --check --quiet . || { echo "ruff format: run 'ruff format .'" >&2; exit 1; }
ruff check --quiet .
exec python -m pytest -q -n 2 --dist loadfile "$@"
