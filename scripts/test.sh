#!/usr/bin/env bash
# One command: install everything, lint (the pre-commit hooks), run the test suite (unit + integration against real local services).
# Extra arguments go to pytest (e.g. -m "not integration").
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
# the linters of .pre-commit-config.yaml on every file: ruff check + format, sqlfluff on dbt/, YAML, end of files
.venv/bin/pre-commit run --all-files --show-diff-on-failure
exec .venv/bin/pytest -q "$@"
