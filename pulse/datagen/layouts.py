"""The generator's clean events written in the public layouts the presets read, for the presets' sample
files and their end-to-end tests (made by the project's own generator: no copied data).

``python -m pulse.datagen.layouts`` rewrites the samples shipped in ``pulse/sources/presets/samples/``."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np

from pulse.datagen.events import GenParams, generate

SAMPLES_DIR = Path(__file__).resolve().parents[1] / "sources" / "presets" / "samples"
SAMPLE_PARAMS = GenParams(n_events=2_000, days=28, end_date=date(2026, 10, 31), seed=7, users_per_chunk=2_000)
REES46_COLUMNS = [
    "event_time", "event_type", "product_id", "category_id", "category_code", "brand", "price", "user_id", "user_session",
]  # fmt: skip


def _events(params: GenParams) -> Iterator[dict]:
    """The generator's events one by one, in time order within each chunk of users."""
    start = datetime.combine(params.end_date - timedelta(days=params.days - 1), datetime.min.time(), tzinfo=UTC)
    for chunk in generate(params):
        for i in np.argsort(chunk["t_ms"], kind="stable"):
            yield {k: v[i] for k, v in chunk.items() if k != "users"} | {
                "time": start + timedelta(milliseconds=int(chunk["t_ms"][i]))
            }


def ecommerce_events(params: GenParams = SAMPLE_PARAMS) -> str:
    """REES46 "eCommerce behavior data": ``2019-10-01 00:00:00 UTC`` times, empty category/brand common."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(REES46_COLUMNS)
    for e in _events(params):
        code = "" if e["product_id"] % 4 == 0 else e["category_code"]  # as in the real file: often unknown
        brand = "" if e["product_id"] % 7 == 0 else e["brand"]
        writer.writerow([
            e["time"].strftime("%Y-%m-%d %H:%M:%S UTC"), e["event_type"], e["product_id"], e["category_id"],
            code, brand, f"{e['price']:.2f}", e["user_id"], e["user_session"],
        ])  # fmt: skip
    return out.getvalue()


LAYOUTS = {"ecommerce_events": (ecommerce_events, "csv")}


def write_samples(directory: Path = SAMPLES_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, (render, suffix) in LAYOUTS.items():
        path = directory / f"{name}.{suffix}"
        path.write_text(render())
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write_samples():
        print(path)
