"""``pulse notebooks``: JupyterLab on the project's notebooks, with the project's venv as the kernel."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from pulse.cli.common import add_source
from pulse.config import REPO_ROOT, settings

KERNEL = "pulse"  # the kernel name the notebooks ask for


def register(sub) -> None:
    p = sub.add_parser(
        "notebooks",
        help="open the analysis notebooks (forecasting, segmentation, memo) in JupyterLab, on loopback with a token",
    )
    add_source(p, help="the source the notebooks read (default %(default)s)")
    p.add_argument("--port", type=int, default=18888, help="JupyterLab's port on 127.0.0.1 (default %(default)s)")
    p.add_argument("--no-browser", action="store_true", help="print the URL (with its token) instead of opening a browser")
    p.set_defaults(fn=run_notebooks)


def ensure_kernel() -> Path:
    """The ``pulse`` kernel in this venv (not in the user's home): this interpreter, with Pulse installed."""
    spec = Path(sys.prefix) / "share" / "jupyter" / "kernels" / KERNEL
    if not (spec / "kernel.json").exists():
        subprocess.run(
            [sys.executable, "-m", "ipykernel", "install", "--sys-prefix", "--name", KERNEL, "--display-name", "Pulse (.venv)"],
            check=True,
            capture_output=True,
        )
    return spec


def run_notebooks(args: argparse.Namespace) -> int:
    s = settings()
    ensure_kernel()
    runtime = s.run_dir / "jupyter"
    runtime.mkdir(parents=True, exist_ok=True)
    # the notebooks read their source from Pulse's configuration: the kernel inherits this environment
    env = {**os.environ, "PULSE_AIRFLOW_SOURCE": args.source, "JUPYTER_RUNTIME_DIR": str(runtime)}
    cmd = [str(Path(sys.executable).with_name("jupyter")), "lab", f"--ServerApp.root_dir={REPO_ROOT / 'notebooks'}",
           "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={args.port}", "--ServerApp.port_retries=0"]  # fmt: skip
    if args.no_browser:
        cmd.append("--no-browser")
    print(f"JupyterLab on http://127.0.0.1:{args.port} (source {args.source}); Ctrl-C stops it", flush=True)
    return subprocess.run(cmd, env=env).returncode
