"""The RAW sensor's check, run in Pulse's venv by the Airflow trigger that waits for a day's partition.

``python -m pulse.dag_tasks.probe SOURCE YYYY-MM-DD``: exit 0 and the manifest's summary as JSON
when the partition is committed, 3 when it is not there yet, 1 (with the error) when the check failed.
"""

from __future__ import annotations

import json
import sys
from datetime import date

NOT_YET = 3


def main(argv: list[str]) -> int:
    from pulse import pipeline
    from pulse.config import settings
    from pulse.domain import source_name

    source, day = source_name(argv[0]), date.fromisoformat(argv[1])
    manifest = pipeline.raw_partition(settings(), source, day)
    if manifest is None:
        return NOT_YET
    summary = {k: manifest.get(k) for k in ("source", "ingest_date", "rows", "bytes", "committed_at")}
    print(json.dumps(summary | {"files": len(manifest.get("files", []))}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
