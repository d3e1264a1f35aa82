"""What the load audit says about a source's last successful load, for the stages after staging."""

from __future__ import annotations

from pulse.config import Settings
from pulse.sources import spec as specs


def last_spec(settings: Settings, source: str) -> specs.Spec:
    """The spec the source's last successful load applied (Pulse's own layout before any load)."""
    import psycopg

    from pulse.common import pg

    try:
        with pg.connect(settings.postgres) as conn:
            row = conn.execute(
                "select s.name, s.spec from staging.load_runs r join staging.source_specs s using (spec_version) "
                "where r.source = %s and r.status = 'succeeded' order by r.finished_at desc limit 1",
                (source,),
            ).fetchone()
    except psycopg.errors.UndefinedTable:  # staging not migrated yet: nothing was loaded
        row = None
    return specs.parse(row[1], name=row[0]) if row else specs.load("demo")
