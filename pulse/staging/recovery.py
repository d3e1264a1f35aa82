"""Runs that died (kill -9, OOM, a lost machine) leave a `running` row and load tables behind.

A run holds its source's advisory lock for as long as it lives, and the lock goes with the
process's connection. So whoever holds the lock and still sees a `running` run of that source is
looking at a dead one: it is marked failed with the reason and its debris is dropped. The next run
does this on its own; `pulse recover` does it on demand.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from pulse.common import pg
from pulse.config import PostgresConfig
from pulse.staging import load

DEAD = "died: its process ended without finishing (its source lock was free); marked by a later run"


class SourceBusy(RuntimeError):
    pass


@contextlib.contextmanager
def source_lock(cfg: PostgresConfig, source: str) -> Iterator[None]:
    """Hold the source's lock (one run per source at a time) for the block; SourceBusy if taken."""
    with pg.connect(cfg, autocommit=True) as guard:
        if not guard.execute("select pg_try_advisory_lock(hashtext('pulse-clean:' || %s))", (source,)).fetchone()[0]:
            raise SourceBusy(f"another clean run for source={source} is in progress")
        yield


def recover_dead_runs(cfg: PostgresConfig, source: str) -> list[str]:
    """With the source lock held: mark the source's `running` runs failed and drop their debris."""
    with pg.connect(cfg, autocommit=True) as conn:
        dead = [
            r[0]
            for r in conn.execute(
                "update staging.load_runs set status = 'failed', finished_at = now(), error = %s "
                "where source = %s and status = 'running' returning run_id",
                (DEAD, source),
            ).fetchall()
        ]
    for run_id in dead:
        load.drop_load_tables(cfg, load.TABLES, run_id)
    return dead


def loaded_sources(cfg: PostgresConfig) -> list[str]:
    """Sources with at least one successful cleaning load, by name."""
    with pg.connect(cfg) as conn:
        rows = conn.execute("select distinct source from staging.load_runs where status = 'succeeded' order by 1").fetchall()
    return [r[0] for r in rows]


def sources_with_running_runs(cfg: PostgresConfig) -> list[str]:
    with pg.connect(cfg) as conn:
        return [r[0] for r in conn.execute("select distinct source from staging.load_runs where status = 'running'")]
