"""Run a script in Airflow's own venv (as its components import Pulse's DAGs and plugins), apart from the
environment of the test process, and read the JSON it prints last."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from pulse.services.airflow import AIRFLOW_VENV

# the test process's own Airflow and Pulse-for-Airflow settings must not leak into the script's
_DROPPED = ("AIRFLOW", "PULSE_AIRFLOW", "PULSE_PYTHON")


def run_json(script: str, args: list[str], env: dict[str, str], timeout: float = 300) -> dict:
    """``script`` run by Airflow's python with ``args``; ``env`` on top of this process's environment less
    its Airflow settings. Returns the last line of its output, parsed; fails the test if it exits non-zero."""
    python = AIRFLOW_VENV / "bin" / "python"
    if not python.exists():
        pytest.fail(f"{python} missing: scripts/install.sh creates Airflow's venv")
    base = {k: v for k, v in os.environ.items() if not k.startswith(_DROPPED)}
    done = subprocess.run([str(python), "-c", script, *args], capture_output=True, text=True, env=base | env, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])
