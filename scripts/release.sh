#!/usr/bin/env bash
# Tag a release and keep its code for the upgrade test: ./scripts/release.sh vX.Y.Z "one-line summary"
# The test runs the previous release's own code from tests/integration/releases/<tag>.tar.gz, not from the
# tag, because a checkout need not carry tags (CI clones may not).
set -euo pipefail
cd "$(dirname "$0")/.."
TAG="$1"
if ! git rev-parse -q --verify "refs/tags/$TAG" >/dev/null; then
  git tag -a "$TAG" -m "${2:?a one-line summary of the release}"
fi
# what an installation runs: the package, the tools' assets, the install scripts (not docs, tests, bench)
git archive --format=tar --prefix="$TAG/" "$TAG" pulse dbt superset airflow jvm scripts pyproject.toml \
  | gzip -n -9 > "tests/integration/releases/$TAG.tar.gz"
echo "tests/integration/releases/$TAG.tar.gz written; now move PREVIOUS in tests/integration/test_upgrade.py to $TAG"
