#!/usr/bin/env bash
# One command: install everything, lint (the pre-commit hooks), run the test suite (unit + integration against real local services).
# Extra arguments go to pytest (e.g. -m "not integration").
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
# the linters of .pre-commit-config.yaml on every file: ruff check + format, sqlfluff on dbt/, YAML, end of files
.venv/bin/pre-commit run --all-files --show-diff-on-failure
# tests run in a random order (pytest-randomly); the seed is printed so a failing order can be replayed
SEED="${PULSE_TEST_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}"
echo "==> random test order, seed $SEED (replay this order: PULSE_TEST_SEED=$SEED bash scripts/test.sh)"
if [ $# -eq 0 ]; then
  # the fast tests once more on a host clock that is not UTC (half-hour offset): nothing may assume the host is UTC
  echo "==> unit tests under TZ=Asia/Kolkata"
  # (the CSV and SQL property tests and the forecast's coverage statistic read no clock: they run once, below)
  TZ=Asia/Kolkata .venv/bin/pytest -q -p no:cacheprovider -p randomly --randomly-seed="$SEED" tests/unit \
    --ignore=tests/unit/test_csv_properties.py --ignore=tests/unit/test_clickhouse_sql_properties.py \
    --deselect=tests/unit/test_ml.py::test_the_forecast_interval_covers_about_its_nominal_share_out_of_sample
fi
# the slowest tests are listed at the end: where the time of the run goes
exec .venv/bin/pytest -q -p randomly --randomly-seed="$SEED" --durations=25 "$@"
