"""Runs tests/browser/dashboards.mjs (Debian's chromium through Playwright) against a Superset and
returns its JSON report; on failure the message carries the script's stderr and Superset's own
account of the logins (its log), so a failure seen once in CI can be told apart afterwards."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from pulse.config import REPO_ROOT, Settings
from pulse.services.superset import Superset

ARTEFACTS = Path(os.environ.get("PULSE_TEST_ARTEFACTS", REPO_ROOT / ".test-artefacts"))


def superset_log_lines(settings: Settings, *words: str, last: int = 20) -> list[str]:
    log = Superset(settings).log_path
    if not log.exists():
        return []
    lines = log.read_text(errors="replace").splitlines()
    return [line[:300] for line in lines if any(w in line for w in words)][-last:]


def dashboards_report(settings: Settings, dashboards: str, timeout: float, **extra_env: str) -> dict:
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    cfg = settings.superset
    env = {
        **os.environ,
        "SUPERSET_URL": cfg.base_url,
        "SUPERSET_USER": cfg.admin_user,
        "SUPERSET_PASSWORD": cfg.admin_password,  # in the environment, never on a command line
        "DASHBOARDS": dashboards,
        "OUT_DIR": str(ARTEFACTS),
        **extra_env,
    }
    done = subprocess.run(
        ["node", "dashboards.mjs"], cwd=REPO_ROOT / "tests" / "browser", env=env, capture_output=True, text=True, timeout=timeout
    )
    logins = superset_log_lines(settings, "Login", "login", "CSRF", "Traceback", "ERROR")
    assert done.returncode == 0, done.stderr[-2000:] + "\nSuperset's log:\n" + "\n".join(logins)
    report = json.loads(done.stdout)
    # a second try at the login form is tolerated, not hidden: its reason goes into the test's output
    if report.get("login_failures"):
        print("login retried:", report["login_failures"], logins)
    return report["dashboards"]
