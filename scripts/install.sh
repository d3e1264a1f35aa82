#!/usr/bin/env bash
# Install everything Pulse needs on a Debian machine: system packages (apt) and a Python venv (.venv).
# Idempotent: skips what is already there. Needs root (or sudo) only for the apt step.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(postgresql openjdk-17-jre-headless libpostgresql-jdbc-java openssl chromium fonts-dejavu-core)
missing=()
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v java >/dev/null 2>&1 || missing+=(openjdk-17-jre-headless)
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || missing+=(postgresql)
[ -f /usr/share/java/postgresql.jar ] || missing+=(libpostgresql-jdbc-java)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)  # browser tests and bench of the dashboards
[ -d /usr/share/fonts/truetype/dejavu ] || missing+=(fonts-dejavu-core)
if [ ${#missing[@]} -gt 0 ]; then
  echo "==> apt: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "==> apt: ${APT_PACKAGES[*]} already installed"
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  "$PY" -m venv .venv
fi
stamp=.venv/.pulse-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "==> pip: installing Pulse and its dependencies into .venv"
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -e ".[dev]"
  # the notebooks' kernel: this venv, registered inside it (never in the user's home)
  .venv/bin/python -m ipykernel install --sys-prefix --name pulse --display-name "Pulse (.venv)" >/dev/null
  touch "$stamp"
else
  echo "==> pip: .venv up to date"
fi

# JVM jars from Maven Central, one classpath per folder of jvm/ (Spark's connectors, the Kafka broker):
# resolved now, so nothing is downloaded when a job or the broker starts
command -v mvn >/dev/null 2>&1 || { echo "mvn missing: apt-get install maven"; exit 1; }
for pom in jvm/*/pom.xml; do
  name=$(basename "$(dirname "$pom")")
  stamp=".jvm/.$name-resolved"
  if [ ! -f "$stamp" ] || [ "$pom" -nt "$stamp" ]; then
    echo "==> mvn: resolving the $name classpath into .jvm/$name"
    rm -rf ".jvm/$name"; mkdir -p .jvm
    if ! mvn -q -B -f "$pom" dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$PWD/.jvm/$name" \
         > ".jvm/$name-mvn.log" 2>&1; then
      cat ".jvm/$name-mvn.log"; echo "mvn could not resolve $pom (see above)"; exit 1
    fi
    touch "$stamp"
  else
    echo "==> mvn: .jvm/$name up to date"
  fi
done

# A tool in a venv of its own, from its requirements file (re-installed when that file changes)
own_venv() {  # own_venv DIR REQUIREMENTS WHAT
  local dir=$1 req=$2 what=$3 stamp=$1/.pulse-installed
  if [ ! -f "$stamp" ] || [ "$req" -nt "$stamp" ]; then
    echo "==> pip: installing $what into $dir"
    [ -x "$dir/bin/python" ] || "$PY" -m venv "$dir"
    "$dir/bin/pip" install -q --upgrade pip
    "$dir/bin/pip" install -q -r "$req"
    touch "$stamp"
  else
    echo "==> pip: $dir up to date"
  fi
}
# Superset: its pins (Flask, SQLAlchemy 1.4, pandas) must not meet dbt's or pyspark's
own_venv .venv-superset superset/requirements.txt "Apache Superset (~800 MB)"
# Airflow: it schedules and alerts; Pulse's steps run in .venv (ExternalPython tasks)
own_venv .venv-airflow airflow/requirements.txt "Apache Airflow (~300 MB)"

# playwright-core drives Debian's chromium in the browser tests (it never downloads a browser)
if [ ! -d tests/browser/node_modules/playwright-core ] || [ tests/browser/package-lock.json -nt tests/browser/node_modules ]; then
  echo "==> npm: playwright-core for the browser tests"
  (cd tests/browser && npm ci --no-audit --no-fund --loglevel=error)
  touch tests/browser/node_modules
else
  echo "==> npm: tests/browser up to date"
fi
