#!/usr/bin/env bash
# One command: install everything, lint, run the test suite (unit + integration against real local services).
# Extra arguments go to pytest (e.g. -m "not integration").
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
.venv/bin/ruff check pulse tests bench
exec .venv/bin/pytest -q "$@"
