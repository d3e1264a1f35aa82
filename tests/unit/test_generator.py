"""The demo generator: deterministic, realistic shape, ground truth consistent with what it wrote."""

from __future__ import annotations

import gzip
import hashlib
from datetime import date
from pathlib import Path

import pyarrow.csv as pacsv
import pytest

from pulse.datagen import generate_dataset
from pulse.datagen.dirty import DEFECTS, DirtParams
from pulse.datagen.events import GenParams
from pulse.domain import RAW_COLUMNS

PARAMS = GenParams(n_events=20_000, days=30, end_date=date(2026, 10, 31), seed=7)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("gen") / "demo"
    return out, generate_dataset(out, PARAMS, DirtParams(rate=0.05))


def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*.csv.gz")):
        h.update(p.relative_to(root).as_posix().encode() + p.read_bytes())
    return h.hexdigest()


def test_same_seed_same_bytes(dataset, tmp_path):
    out, _ = dataset
    generate_dataset(tmp_path / "again", PARAMS, DirtParams(rate=0.05))
    assert _digest(out) == _digest(tmp_path / "again")


def test_ground_truth_accounts_for_every_line(dataset):
    out, truth = dataset
    lines = sum(gzip.decompress(p.read_bytes()).count(b"\n") - 1 for p in out.rglob("*.csv.gz"))
    assert lines == truth["raw_rows"] == truth["clean_events"] + truth["quarantined_total"]
    assert set(truth["injected"]) == set(DEFECTS)
    assert all(n > 0 for n in truth["quarantined"].values())
    assert 15_000 < truth["raw_rows"] < 25_000  # roughly the size asked for


def test_layout_and_shape(dataset):
    out, truth = dataset
    parts = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert parts[0] == "ingest_date=2026-10-02" and len(parts) >= 30  # late events land after the last day
    table = pacsv.read_csv(
        out / parts[-5] / "part-00000.csv.gz", parse_options=pacsv.ParseOptions(invalid_row_handler=lambda r: "skip")
    )
    assert table.column_names == RAW_COLUMNS
    types = table.column("event_type").to_pylist()
    assert types.count("view") > types.count("cart") > types.count("purchase") > 0  # the funnel narrows
    assert truth["purchases"] > 0 and float(truth["revenue_usd"]) > 0
    # acquisition grows: more users active at the end than at the start
    dau = list(truth["dau_by_date"].values())
    assert sum(dau[-7:]) > sum(dau[:7])
