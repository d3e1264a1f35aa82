"""Services start reliably and say why when they do not.

Every port Pulse or its test suite binds lies below Linux' ephemeral range (32768-60999 by default): a port in
that range can be held, at the moment a service starts, by any outgoing connection on the machine (the
service's own components dialling each other included), and the service then dies with "address in use"."""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

from pulse.config import Settings, load_settings
from pulse.services.base import tail

EPHEMERAL = range(32768, 61000)
TESTS = Path(__file__).resolve().parents[1]
TEST_PORT = re.compile(r'"(PULSE_\w*PORT)":\s*"(\d+)"')


def default_ports(s: Settings) -> dict[str, int]:
    ports = {}
    for section in dataclasses.fields(s):
        value = getattr(s, section.name)
        if dataclasses.is_dataclass(value):
            for f in dataclasses.fields(value):
                if f.name.endswith("port") and isinstance(getattr(value, f.name), int):
                    ports[f"{section.name}.{f.name}"] = getattr(value, f.name)
    return ports


def test_default_ports_are_below_the_ephemeral_range(monkeypatch, tmp_path):
    for key in [k for k in os.environ if k.startswith("PULSE_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("PULSE_HOME", str(tmp_path))
    monkeypatch.setenv("PULSE_CONFIG", str(tmp_path / "none.toml"))
    ports = default_ports(load_settings())
    assert {"s3.port", "s3.base_port", "postgres.port", "clickhouse.port", "superset.port", "kafka.port"} <= set(ports)
    assert {k: p for k, p in ports.items() if p in EPHEMERAL} == {}


def test_the_suites_ports_are_below_the_ephemeral_range():
    found = {
        f"{path.relative_to(TESTS)}:{key}": int(port)
        for path in TESTS.rglob("*.py")
        for key, port in TEST_PORT.findall(path.read_text())
    }
    assert len(found) >= 10  # the suite's and the upgrade test's installations
    # highest offset a second checkout uses (PULSE_TEST_PORT_OFFSET, docs/testing.md) included
    assert {k: p for k, p in found.items() if p in EPHEMERAL or p + 400 in EPHEMERAL} == {}


def test_a_start_up_error_names_the_fatal_line_above_a_long_stack(tmp_path):
    log = tmp_path / "s3.log"
    stack = [f"\tgithub.com/seaweedfs/seaweedfs/weed/x.go:{i} +0x45" for i in range(40)]
    log.write_text("\n".join(["I1202 started", "F1202 18:01:02 s3.go:448] listen tcp :38334: bind: address in use", *stack]))
    shown = tail(log).splitlines()
    assert shown[0].startswith("F1202") and shown[1] == "…" and shown[2:] == stack[-15:]
    log.write_text("\n".join(["I1202 started", *stack[:5]]))  # short log: the tail as it is
    assert tail(log).splitlines() == ["I1202 started", *stack[:5]]
