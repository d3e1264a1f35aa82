"""Source-spec benchmark: the cleaning job's Spark rules on the demo layout through the spec compiler,
against the rules as they were before specs (the same RAW, the same Spark session, in one run).

Both read RAW through S3A and run the rules and the dedup to the job's counts (rows per rule), in turns
(before, spec, before, spec, …); the median of each gives the ratio (goal: at most 1.10, issue 19). The
two must agree on every count, or the run fails.

    .venv/bin/python bench/bench_spec.py [--events 1000000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from measure import agree, exit_code, write_results

from pulse import domain
from pulse.common.spark import session
from pulse.config import REPO_ROOT, ensure_secrets, settings
from pulse.datagen import generate_dataset
from pulse.datagen.events import GenParams
from pulse.domain import RAW_COLUMNS
from pulse.lake.raw import list_committed, upload_dataset
from pulse.services import registry
from pulse.sources import spec as specs
from pulse.sources.compile import compile_spec
from pulse.staging import raw_reader, rules

BEFORE = "eb6467f"  # the last commit before source specs: its pulse/staging/rules.py is "before"


def rules_before():
    """pulse/staging/rules.py as it was at BEFORE, as a module of its own (it imports today's pulse.domain)."""
    git = ["git", "-C", str(REPO_ROOT), "show", f"{BEFORE}:pulse/staging/rules.py"]
    text = subprocess.run(git, capture_output=True, text=True)
    if text.returncode:
        sys.exit(f"needs the git history (commit {BEFORE}): {text.stderr.strip()}")
    path = Path(tempfile.mkdtemp()) / "rules_before.py"
    path.write_text(text.stdout)
    spec = importlib.util.spec_from_file_location("rules_before", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["rules_before"] = module  # its dataclasses look their module up while being defined
    # what it imported from pulse.domain then and lives elsewhere now: the demo layout's synonyms (its preset)
    domain.EVENT_TYPE_SYNONYMS = getattr(domain, "EVENT_TYPE_SYNONYMS", specs.load("demo").synonyms)
    spec.loader.exec_module(module)
    # today's domain also reads epoch nanoseconds, which the old rules had no parser for (the demo has none)
    module.EPOCH_DIGITS = {k: v for k, v in module.EPOCH_DIGITS.items() if k in module.EPOCH_PARSERS}
    return module


def counts(classified) -> dict[str, int]:
    return {str(r["rule"]): r["count"] for r in classified.groupBy("rule").count().collect()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    ensure_secrets()
    s = settings()
    registry.up(s, ["s3"], echo=lambda _m: None)
    source = f"bench{args.events}"
    if not list_committed(s.s3, source):
        generate_dataset(s.datasets_dir / source, GenParams(n_events=args.events, seed=11))
        upload_dataset(s.s3, s.datasets_dir / source, source)
    spark = session(s, "pulse-bench-spec")
    files = list_committed(s.s3, source)
    raw = raw_reader.read(spark, s.s3, files, optional=tuple(RAW_COLUMNS))
    old = rules_before()
    compiled = compile_spec(spark, specs.load("demo"), raw, inputs=RAW_COLUMNS)
    paths = {"before specs": lambda: old.classify(raw), "spec compiler": lambda: rules.classify(raw, compiled)}
    seconds: dict[str, list[float]] = {name: [] for name in paths}
    seen: dict[str, dict] = {}
    for _ in range(args.rounds):
        for name, classify in paths.items():
            t0 = time.perf_counter()
            seen[name] = counts(classify())
            seconds[name].append(time.perf_counter() - t0)
            print(f"  {name:<14} {seconds[name][-1]:7.2f} s  {sum(seen[name].values()):,} rows", flush=True)
    agree(f"{args.events:,} events: rows per rule, spec compiler vs before", seen["spec compiler"], seen["before specs"])
    median = {name: statistics.median(v) for name, v in seconds.items()}
    ratio = median["spec compiler"] / median["before specs"]
    print(f"  median: before {median['before specs']:.2f} s, spec compiler {median['spec compiler']:.2f} s "
          f"-> ratio {ratio:.3f} (goal <= 1.10)")  # fmt: skip
    write_results("spec", [{"events": args.events, "path": n, "seconds": v, "median": median[n]} for n, v in seconds.items()]
                  + [{"events": args.events, "ratio": round(ratio, 3)}])  # fmt: skip
    spark.stop()
    return exit_code() or (0 if ratio <= 1.10 else 1)


if __name__ == "__main__":
    sys.exit(main())
