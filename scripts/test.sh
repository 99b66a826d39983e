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
torch_version=2.13.0  # CPU build; the version scripts/constraints.txt pins
if [ -x "$venv/bin/python" ]; then
    echo "test.sh: updating $venv (a few seconds to a minute)"
else
    echo "test.sh: making $venv; the first install downloads several hundred MB" \
         "(torch $torch_version CPU build alone 192 MB; 1.5 GB installed), a few minutes"
    python3 -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip install --quiet)
if [ "${FLOWKIT_NEWEST:-0}" = 1 ]; then
    pin=(--upgrade --upgrade-strategy eager)
    echo "test.sh: installing the newest releases of every dependency (FLOWKIT_NEWEST=1)"
else
    pin=(-c "$constraints")
    echo "test.sh: installing the known-good versions of $constraints"
fi
"${pip[@]}" "${pin[@]}" --upgrade pip
# Pinned so that pip takes the CPU wheel instead of several GB of CUDA packages.
echo "test.sh: torch $torch_version (CPU build)"
"${pip[@]}" "${pin[@]}" "torch==$torch_version"
echo "test.sh: flowkit, editable, with the test extras (pytest, tensorboard, distributed, mkdocs)"
# setuptools warns on every editable install of this layout (cli/ installed as flowkit.cli) that
# a folder named flowkit in the working directory may shadow the package: README,
# Troubleshooting. The tests run from the repository root, where flowkit/ is the package itself.
PYTHONWARNINGS="ignore:Editable installation" "${pip[@]}" "${pin[@]}" -e ".[test]"
if [ "${FLOWKIT_NEWEST:-0}" = 1 ]; then
    "$venv/bin/python" -m pip freeze --exclude-editable | grep -v '^#' | sed 's/+cpu$//' \
        > "$venv/versions.txt"
    echo "newest releases (written to $venv/versions.txt); differing from $constraints:"
    grep -v '^#' "$constraints" | sort | comm -13 - <(sort "$venv/versions.txt") | sed 's/^/  /'
fi
if [ $# = 0 ]; then
    echo "test.sh: running the whole suite (about 1160 tests; about 6-8 minutes on 2 cores:" \
         "369-470 s measured on a 2-core machine of CI's class)"
else
    echo "test.sh: running pytest $*"
fi
exec "$venv/bin/python" -m pytest -q "$@"
