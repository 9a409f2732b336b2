#!/usr/bin/env bash
# Run the test suite with the LOWEST versions that pyproject.toml allows for the
# project's direct dependencies (including the "dev" extra), in .venv-lowest.
#
#   bash scripts/lowest_versions.sh            # whole suite
#   bash scripts/lowest_versions.sh tests/unit # extra arguments go to pytest
#
# Needs Python 3.11+ (override with PYTHON=...) and access to PyPI; redis-server
# on PATH for the Redis tests.
set -euo pipefail

cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
VENV=.venv-lowest

# A fresh environment each time, so no newer package lingers from an earlier run.
"$PYTHON" -m venv --clear "$VENV"
"$VENV/bin/python" -m pip install -q uv

# lowest-direct: every direct requirement at its lower bound; what those need
# in turn at the newest version that fits.
"$VENV/bin/uv" pip install --python "$VENV/bin/python" --resolution lowest-direct -e ".[dev]"

"$VENV/bin/python" -m pytest -q "$@"
