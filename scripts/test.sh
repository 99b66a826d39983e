#!/usr/bin/env bash
# Install what the tests need into .venv (CPU-only torch pinned) and run the test suite.
# Usage: bash scripts/test.sh [pytest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${FLOWKIT_VENV:-.venv}"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --upgrade pip
# Pinned so that pip takes the CPU wheel instead of several GB of CUDA packages.
"$venv/bin/python" -m pip install --quiet "torch==2.13.0"
"$venv/bin/python" -m pip install --quiet -e ".[test]"
exec "$venv/bin/python" -m pytest -q "$@"
