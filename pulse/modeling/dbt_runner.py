"""Run the dbt project against the configured ClickHouse (marts) and PostgreSQL (sources).

Sources stay in PostgreSQL: ClickHouse reads them through its PostgreSQL database engine
(created by the project's on-run-start hook), so dbt needs one adapter (dbt-clickhouse) and
the lower layers are still versioned dbt models. The ClickHouse server must be able to reach
PostgreSQL at the configured address. dbt's target/ goes under $PULSE_HOME/dbt, its log to
$PULSE_HOME/logs/dbt.log.

Every source is built in a database of its own (``<db>_<source>__build``): sources never mix, and
``build`` publishes the marts to ``<db>_<source>`` only when every test passed (``publish``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from pulse.config import DEMO_SOURCE, PG_COLLECTION, PG_DATABASE, REPO_ROOT, Settings
from pulse.domain import source_name
from pulse.modeling.dbt_progress import Progress, follow
from pulse.modeling.publish import BuildResult, failures, mart_models, publish

PROJECT_DIR = REPO_ROOT / "dbt"


def connection_env(settings: Settings, source: str) -> dict[str, str]:
    """What dbt/profiles.yml reads: this configuration's ClickHouse and the source's build database."""
    ch = settings.clickhouse
    return {
        "PULSE_CH_HOST": ch.host or "127.0.0.1",
        "PULSE_CH_PORT": str(ch.port),
        "PULSE_CH_USER": ch.user,
        "PULSE_CH_SECURE": str(ch.secure).lower(),
        "PULSE_DBT_SCHEMA": ch.build_database(source),
        "DBT_ENV_SECRET_CH_PASSWORD": ch.password,
    }


def loaded_roles(settings: Settings, source: str) -> dict:
    """The roles of the spec the source's last successful load applied (the demo layout's before any)."""
    from pulse.staging.runs import last_spec

    spec = last_spec(settings, source)
    r = spec.roles
    return {"active": list(r.active) if r.active is not None else None, "funnel": list(r.funnel),
            "funnel_labels": list(r.step_labels()), "revenue": list(r.revenue), "refund": list(r.refund),
            "signup": r.signup}  # fmt: skip


def dbt_binary() -> str:
    found = shutil.which("dbt") or str(Path(sys.executable).with_name("dbt"))
    if not Path(found).exists():
        raise FileNotFoundError("dbt not found: pip install 'dbt-core~=1.10.0' 'dbt-clickhouse~=1.10.0'")
    return found


def _command(settings: Settings, args: list[str], source: str, structured: bool) -> list[str]:
    cmd = [dbt_binary(), *args, "--project-dir", str(PROJECT_DIR), "--profiles-dir", str(PROJECT_DIR)]
    # dbt's own lines: structured (read by dbt_progress) or plain, coloured only on a terminal
    cmd += ["--log-format", "json"] if structured else []
    cmd += ["--use-colors" if sys.stdout.isatty() else "--no-use-colors", "--log-format-file", "debug"]
    if args and args[0] not in ("debug", "clean", "deps"):
        # the attach names come from the one place the ClickHouse service also takes them from
        names = {"pg_database": PG_DATABASE, "pg_collection": PG_COLLECTION}
        roles = {"pulse_roles": loaded_roles(settings, source)}
        cmd += [
            "--vars",
            json.dumps({"pulse_source": source, "marts_database": settings.clickhouse.marts_database(source), **names, **roles}),
        ]
    return cmd


def run(settings: Settings, args: list[str], source: str = DEMO_SOURCE, progress: Progress | None = None) -> int:
    """``dbt <args>`` for this configuration; returns dbt's exit code. With ``progress``, dbt's structured
    log is read into it (a line per layer); otherwise dbt's lines stream through. Either way the full log
    is in ``settings.dbt_log``. dbt gets no Postgres credentials at all (the ClickHouse server holds them in a named
    collection), and the ClickHouse password in a ``DBT_ENV_SECRET_`` variable, which dbt scrubs from its logs."""
    source_name(source)
    settings.dbt_log.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.update(
        {
            **connection_env(settings, source),
            "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
            "DBT_TARGET_PATH": str(settings.dbt_target(source)),
            "DBT_LOG_PATH": str(settings.dbt_log.parent),
        }
    )
    cmd = _command(settings, args, source, structured=progress is not None)
    if progress is None:
        return subprocess.run(cmd, env=env, cwd=PROJECT_DIR).returncode
    with subprocess.Popen(cmd, env=env, cwd=PROJECT_DIR, stdout=subprocess.PIPE, text=True, bufsize=1) as proc:
        assert proc.stdout is not None
        follow(proc.stdout, progress)
    return proc.returncode


def build(
    settings: Settings,
    source: str = DEMO_SOURCE,
    full_refresh: bool = False,
    quiet: bool = False,
    domain: str | None = None,
    verbose: bool = False,
) -> BuildResult:
    """``dbt build`` (models and tests) in the source's build database, then publish the marts if
    everything passed. A failed build publishes nothing: the previous marts keep serving. ``domain`` builds
    and publishes only that folder of marts (``ml``: after an ML run). Prints a line per completed layer
    (none when ``quiet``; dbt's own lines too when ``verbose``); the result carries the one-line summary."""
    ch = settings.clickhouse
    args = ["build", *(["--full-refresh"] if full_refresh else [])]
    if domain:
        args += ["--select", f"path:models/marts/{domain}"]
    target = settings.dbt_target(source)
    progress = Progress(target / "manifest.json", domain=domain, tty=not quiet and sys.stderr.isatty(), verbose=verbose)
    if quiet:
        progress.out = lambda _m: None
    code = run(settings, args, source=source, progress=progress)
    result = BuildResult(source, ch.build_database(source), ch.marts_database(source), code, failures=failures(target))
    result.summary = progress.summary()
    if result.ok:
        result.published = publish(settings, source, mart_models(target, domain))
    return result
