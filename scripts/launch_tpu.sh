#!/usr/bin/env bash
# Thin wrapper: runs scripts/launch_tpu.py with the repository's .venv (see its --help).
#   scripts/launch_tpu.sh --name etam-v5p --zone us-east5-a --accelerator-type v5p-32 \
#       --config experiments/configs/NAME.py --workdir gs://BUCKET/runs/NAME --dry-run
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -f .venv/bin/activate ]; then . .venv/bin/activate; fi
exec python scripts/launch_tpu.py "$@"
