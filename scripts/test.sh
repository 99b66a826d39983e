#!/usr/bin/env bash
# Install what the tests need into .venv (CPU-only torch pinned) and run the test suite.
# Usage: bash scripts/test.sh [pytest arguments]
#
# The install takes the known-good versions of scripts/constraints.txt. FLOWKIT_NEWEST=1 takes
# the newest releases instead (eager upgrade of everything), writes their versions to
# $venv/versions.txt and lists those that differ from the constraints (docs/testing.md).
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${FLOWKIT_VENV:-.venv}"
constraints=scripts/constraints.txt
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
pip=("$venv/bin/python" -m pip install --quiet)
if [ "${FLOWKIT_NEWEST:-0}" = 1 ]; then
    pin=(--upgrade --upgrade-strategy eager)
else
    pin=(-c "$constraints")
fi
"${pip[@]}" "${pin[@]}" --upgrade pip
# Pinned so that pip takes the CPU wheel instead of several GB of CUDA packages.
"${pip[@]}" "${pin[@]}" "torch==2.13.0"
"${pip[@]}" "${pin[@]}" -e ".[test]"
if [ "${FLOWKIT_NEWEST:-0}" = 1 ]; then
    "$venv/bin/python" -m pip freeze --exclude-editable | grep -v '^#' | sed 's/+cpu$//' \
        > "$venv/versions.txt"
    echo "newest releases (written to $venv/versions.txt); differing from $constraints:"
    grep -v '^#' "$constraints" | sort | comm -13 - <(sort "$venv/versions.txt") | sed 's/^/  /'
fi
exec "$venv/bin/python" -m pytest -q "$@"
