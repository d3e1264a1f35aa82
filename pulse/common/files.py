"""Files that hold secrets."""

from __future__ import annotations

import os
from pathlib import Path


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by this user only, from the first byte (no chmod window)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # an existing file keeps its old mode under O_CREAT
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


def private_dir(path: Path, mode: int = 0o700) -> Path:
    """Create ``path`` (and parents) and give it ``mode``: state directories are never world-readable
    (0711 where another OS user, PostgreSQL's, must only pass through)."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(mode)
    return path
