#!/usr/bin/env bash
# Set everything up and run the whole test suite.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash ci/setup.sh
exec .venv/bin/python -m pytest "$@"
