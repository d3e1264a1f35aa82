#!/usr/bin/env bash
# One command: install everything, start the local services, run the whole pipeline on demo data.
# Extra arguments go to `pulse demo` (e.g. --events 1000000).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
exec .venv/bin/pulse demo "$@"
