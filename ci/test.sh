#!/usr/bin/env bash
# Set everything up and run the whole test suite.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash ci/setup.sh
# Everything the tests need is installed now, so a skipped test is a failure
# (tests/conftest.py) unless the caller says CI=false.
export CI="${CI:-true}"
exec .venv/bin/python -m pytest "$@"
