"""Demo dataset: realistic e-commerce / mobile-app events with injected dirty data and its ground truth."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from pulse.common.progress import step
from pulse.datagen.dirty import DirtParams, GroundTruth, render
from pulse.datagen.events import GenParams, generate
from pulse.datagen.writer import write_chunk

GROUND_TRUTH_FILE = "ground_truth.json"


def generate_dataset(out_dir: Path, params: GenParams, dirt: DirtParams | None = None) -> dict:
    """Generate into ``out_dir`` (replaced whole) and return the ground truth it also writes there."""
    dirt = dirt or DirtParams()
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    truth = GroundTruth()
    rng = np.random.default_rng(params.seed + 1)
    with step(f"generate ~{params.n_events:,} events, {params.days} days to {params.end_date}") as s:
        for part, chunk in enumerate(generate(params)):
            raw = render(chunk, params.start_date, rng, dirt, truth)
            write_chunk(tmp, raw, params.start_date, part)
            s.update(len(raw.ingest_day) + len(raw.malformed))
    doc = {
        "params": {
            "n_events": params.n_events,
            "days": params.days,
            "end_date": params.end_date.isoformat(),
            "seed": params.seed,
            "dirt": dirt.__dict__,
        },
        **truth.to_dict(),
    }
    (tmp / GROUND_TRUTH_FILE).write_text(json.dumps(doc, indent=1))
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)  # a half-written dataset never looks complete
    return doc
