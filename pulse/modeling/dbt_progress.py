"""dbt's structured log (``--log-format json``) read as it streams: a line per completed layer
(``staging 2/2 · intermediate 5/5 · marts 17/17 · tests 77/77``), updated in place on a terminal.
dbt's full log goes to its log file; ``verbose`` echoes dbt's own lines as well."""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

# the results dbt logs once per executed node
RESULT_EVENTS = {"LogModelResult", "LogTestResult", "LogSeedResult", "LogSnapshotResult", "LogNodeResult"}
LAYER_ORDER = ["seeds", "staging", "intermediate", "marts", "snapshots", "tests"]


def layer_of(node: dict) -> str:
    """A node's layer: its models folder for a model (staging, intermediate, marts), else its kind."""
    kind = node.get("resource_type", "")
    if kind == "model":
        fqn = node.get("fqn") or []
        return fqn[1] if len(fqn) > 2 else "models"
    return {"test": "tests", "unit_test": "tests", "seed": "seeds", "snapshot": "snapshots"}.get(kind, kind)


def planned(manifest: dict, domain: str | None = None) -> dict[str, str]:
    """unique id -> layer of every node a ``dbt build`` (of one marts domain, if given) runs: all enabled
    models, seeds, snapshots and tests, or the domain's models and the tests of any of them (dbt's eager
    indirect selection)."""
    nodes = {**manifest.get("nodes", {}), **manifest.get("unit_tests", {})}
    runnable = {k: n for k, n in nodes.items() if n.get("resource_type") in ("model", "test", "unit_test", "seed", "snapshot")}
    if domain is None:
        return {k: layer_of(n) for k, n in runnable.items()}
    models = {k for k, n in runnable.items() if n["resource_type"] == "model" and n.get("fqn", [])[1:3] == ["marts", domain]}
    tests = {
        k
        for k, n in runnable.items()
        if n["resource_type"] in ("test", "unit_test") and models & set(n.get("depends_on", {}).get("nodes", []))
    }
    return {k: layer_of(runnable[k]) for k in models | tests}


@dataclass
class Progress:
    """Counts dbt's node results by layer and says so: one line each time a layer completes (or, on a
    terminal, one line rewritten in place). Totals come from the manifest dbt writes after parsing."""

    manifest_path: Path
    domain: str | None = None
    out: Callable[[str], None] = field(default=lambda m: print(m, file=sys.stderr, flush=True))
    tty: bool = False
    verbose: bool = False
    done: Counter = field(default_factory=Counter)
    statuses: Counter = field(default_factory=Counter)
    totals: dict[str, int] | None = None
    _layers: dict[str, str] = field(default_factory=dict)
    _complete: set[str] = field(default_factory=set)
    started: float = field(default_factory=time.perf_counter)

    def _plan(self, total: int | None) -> None:
        try:
            manifest = json.loads(self.manifest_path.read_text())
        except (OSError, ValueError):
            manifest = {}
        self._layers = planned(manifest, self.domain)
        totals, planned_total = Counter(self._layers.values()), len(self._layers)
        # dbt counts the exposures too (they log no result); the plan is shown only when it is dbt's own
        # (a selection this reading does not know: counts alone)
        agrees = total is None or planned_total <= total <= planned_total + len(manifest.get("exposures", {}))
        self.totals = dict(totals) if agrees and planned_total else {}

    def line(self) -> str:
        totals = self.totals or {}
        layers = sorted(set(self.done) | set(totals), key=lambda x: [*LAYER_ORDER, x].index(x))
        shown = [f"{x} {self.done[x]}/{totals[x]}" if totals.get(x) else f"{x} {self.done[x]}" for x in layers]
        return " · ".join(shown)

    def feed(self, raw: str) -> None:
        try:
            event = json.loads(raw)
        except ValueError:
            if raw.strip():
                self.out(raw.rstrip())  # not dbt's structured log (a crash before logging started): show it
            return
        info, data = event.get("info", {}), event.get("data", {})
        if self.verbose and info.get("msg"):
            self.out(info["msg"])
        name = info.get("name")
        if name == "LogStartLine" and self.totals is None:
            self._plan(data.get("total"))
        if name not in RESULT_EVENTS:
            return
        node = data.get("node_info", {})
        layer = self._layers.get(node.get("unique_id", "")) or layer_of(node)
        self.done[layer] += 1
        self.statuses[data.get("status") or node.get("node_status") or "done"] += 1
        self._show(layer)

    def _show(self, layer: str) -> None:
        if self.verbose:
            return
        if self.tty:
            print(f"\r    {self.line()}", end="", file=sys.stderr, flush=True)
            return
        total = (self.totals or {}).get(layer)
        if total and self.done[layer] == total and layer not in self._complete:
            self._complete.add(layer)
            self.out(f"    {self.line()}")

    def finish(self) -> None:
        if self.tty and not self.verbose and self.done:
            print(file=sys.stderr, flush=True)

    def summary(self) -> str:
        """``24 models, 77 tests in 41.2 s`` (with the failures and skips, if any)."""
        layers = self.done
        models = sum(n for x, n in layers.items() if x not in ("tests", "seeds", "snapshots"))
        parts = [f"{models} models", f"{layers['tests']} tests"]
        parts += [f"{layers[x]} {x}" for x in ("seeds", "snapshots") if layers[x]]
        bad = {s: n for s, n in self.statuses.items() if s in ("fail", "error", "skipped", "warn")}
        tail = "".join(f", {n} {s}" for s, n in sorted(bad.items()))
        return f"{', '.join(parts)}{tail} in {time.perf_counter() - self.started:.1f} s"


def follow(lines: Iterable[str], progress: Progress) -> Progress:
    for raw in lines:
        progress.feed(raw)
    progress.finish()
    return progress
