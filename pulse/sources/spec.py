"""A source spec: how one dataset's files become Pulse events — the input format, rows left out on
purpose, each event field as a Spark SQL expression over the input's columns, and the roles (which
events are activity, the funnel's steps, which carry revenue).

A spec is YAML (a file, or the name of a preset in ``presets/``). ``load`` validates it whole and
raises SpecError naming the line, the field and what was expected, before anything runs."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

PRESETS_DIR = Path(__file__).parent / "presets"
SPEC_VERSION = 1
FORMATS = ("csv", "jsonl", "parquet", "xlsx")
# the event's fields, named as the staging columns they fill; the first three are required
REQUIRED_FIELDS = ("event_time", "event_type", "user_id")
OPTIONAL_FIELDS = (
    "event_id", "session_id", "product_id", "category_id", "category_code", "brand",
    "price", "currency", "platform", "country", "app_version", "channel",
)  # fmt: skip
FIELDS = REQUIRED_FIELDS + OPTIONAL_FIELDS
MAX_FUNNEL_STEPS = 6


class SpecError(ValueError):
    """A spec that cannot be used; the message names where (line, field) and what was expected."""


@dataclass(frozen=True)
class Input:
    format: str = "csv"
    delimiter: str = ","
    quote: str = '"'
    encoding: str = "utf-8"
    header: bool = True
    # the layout's columns in order: a header-less file's names; with a header, the columns a file may
    # lack (read as NULL) and the order of the raw record (and of the content an event id is hashed from)
    columns: tuple[str, ...] = ()
    sheets: tuple[str, ...] = ()  # XLSX: the sheets to read (all when empty), one table of the same columns

    @property
    def raw_format(self) -> str:
        """The format of the source's files in RAW: an XLSX workbook is converted to CSV once, at ingest."""
        return "csv" if self.format == "xlsx" else self.format


@dataclass(frozen=True)
class Roles:
    active: tuple[str, ...] | None = None  # None: every event makes its user active
    funnel: tuple[str, ...] = ("view", "cart", "purchase")
    revenue: tuple[str, ...] = ("purchase",)
    refund: tuple[str, ...] = ()  # their amounts count negative (-|price|): given negative or not, never twice
    signup: str | None = None  # the event a user's cohort starts with; else their first active day
    funnel_labels: tuple[str, ...] = ()  # what the funnel chart calls each step (default: the event names)

    def active_events(self) -> tuple[str, ...] | None:
        """The event types that make a user active (None: all). Revenue, refund and signup events are
        activity too, so revenue never leaves with the filter and a cohort starts on an active day."""
        if self.active is None:
            return None
        return (*self.active, *self.revenue, *self.refund, *((self.signup,) if self.signup else ()))

    def step_labels(self) -> tuple[str, ...]:
        """``1. viewed``, ``2. add to cart``…: the funnel's steps as the chart shows them, numbered."""
        names = self.funnel_labels or tuple(step.replace("_", " ") for step in self.funnel)
        return tuple(f"{i}. {name}" for i, name in enumerate(names, 1))


@dataclass(frozen=True)
class Spec:
    name: str
    fields: dict[str, str]  # event field -> Spark SQL expression over the input columns
    input: Input = Input()
    filters: dict[str, str] = field(default_factory=dict)  # name -> condition a kept row meets
    time_zone: str = "UTC"  # of timestamps that carry no offset
    synonyms: dict[str, str] = field(default_factory=dict)  # event type spellings -> the name they mean
    vocabulary: tuple[str, ...] | None = None  # a closed list of event types (others: unknown_event_type)
    integer_fields: tuple[str, ...] = ()  # fields whose text must be an integer, else wrong_type
    positive_price: bool = False  # a price <= 0 is invalid_price (else zero and negative amounts are allowed)
    properties: bool = True  # keep the input columns no field reads, as the event's properties
    add_properties: dict[str, str] = field(default_factory=dict)  # more properties, as expressions (watch_seconds)
    roles: Roles = Roles()
    text: str = ""  # the YAML as written: recorded with each load

    @property
    def version(self) -> str:
        """Which spec a load used: the first 12 hex digits of the YAML's sha256."""
        return hashlib.sha256(self.text.encode()).hexdigest()[:12]

    def role_events(self) -> set[str]:
        r = self.roles
        return set(r.active or ()) | set(r.funnel) | set(r.revenue) | set(r.refund) | ({r.signup} if r.signup else set())


def presets() -> list[str]:
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def load(spec: str | Path) -> Spec:
    """A preset by name, or a YAML file by path."""
    path = Path(spec)
    if not path.suffix and str(spec) in presets():
        path = PRESETS_DIR / f"{spec}.yaml"
    if not path.exists():
        raise SpecError(f"spec {spec!r}: no such file, and not a preset (presets: {', '.join(presets())})")
    return parse(path.read_text(), name=path.stem, where=str(path))


def parse(text: str, name: str = "spec", where: str = "spec") -> Spec:
    try:
        root = yaml.compose(text)
    except yaml.YAMLError as exc:
        raise SpecError(f"{where}: not YAML: {exc}") from None
    if not isinstance(root, yaml.MappingNode):
        raise SpecError(f"{where}: a spec is a mapping of keys (input, fields, roles, …)")
    return _Reader(where).spec(root, text, name)


TOP_KEYS = (
    "spec_version", "description", "input", "filters", "fields", "time_zone",
    "event_types", "checks", "properties", "add_properties", "roles",
)  # fmt: skip
INPUT_KEYS = ("format", "delimiter", "quote", "encoding", "header", "columns", "sheets")
ROLE_KEYS = ("active", "funnel", "funnel_labels", "revenue", "refund", "signup")


class _Reader:
    """Reads the YAML node tree, so each error can name its line."""

    def __init__(self, where: str) -> None:
        self.where = where

    def fail(self, node: yaml.Node, what: str) -> SpecError:
        return SpecError(f"{self.where}, line {node.start_mark.line + 1}: {what}")

    def mapping(self, node: yaml.Node, path: str, keys: tuple[str, ...] | None = None) -> dict[str, yaml.Node]:
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, f"{path}: expected a mapping of keys")
        out: dict[str, yaml.Node] = {}
        for key, value in node.value:
            k = key.value if isinstance(key, yaml.ScalarNode) else None
            if not isinstance(k, str) or (keys is not None and k not in keys):
                expected = f"one of {', '.join(keys)}" if keys else "a name"
                raise self.fail(key, f"{path}: unknown key {k!r} (expected {expected})")
            if k in out:
                raise self.fail(key, f"{path}.{k}: given twice")
            out[k] = value
        return out

    def scalar(self, node: yaml.Node, path: str) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            raise self.fail(node, f"{path}: expected a single value")
        return yaml.safe_load(yaml.serialize(node))

    def text(self, node: yaml.Node, path: str, allow_empty: bool = False) -> str:
        value = self.scalar(node, path)
        if isinstance(value, bool) or value is None or (not allow_empty and str(value).strip() == ""):
            raise self.fail(node, f"{path}: expected text, got {value!r}")
        return str(value)

    def flag(self, node: yaml.Node, path: str) -> bool:
        value = self.scalar(node, path)
        if not isinstance(value, bool):
            raise self.fail(node, f"{path}: expected true or false, got {value!r}")
        return value

    def names(self, node: yaml.Node, path: str) -> tuple[str, ...]:
        if not isinstance(node, yaml.SequenceNode):
            raise self.fail(node, f"{path}: expected a list, e.g. [view, cart, purchase]")
        return tuple(self.text(item, f"{path}[{i}]") for i, item in enumerate(node.value))

    def spec(self, root: yaml.MappingNode, text: str, name: str) -> Spec:
        top = self.mapping(root, "spec", TOP_KEYS)
        version = self.scalar(top["spec_version"], "spec_version") if "spec_version" in top else None
        if version != SPEC_VERSION:
            raise self.fail(top.get("spec_version", root), f"spec_version: expected {SPEC_VERSION}, got {version!r}")
        if "fields" not in top:
            raise self.fail(root, f"fields: missing (at least {', '.join(REQUIRED_FIELDS)})")
        types = self.event_types(top["event_types"]) if "event_types" in top else ({}, None)
        spec = Spec(
            name=name,
            fields=self.fields(top["fields"]),
            input=self.input(top["input"]) if "input" in top else Input(),
            filters={k: self.text(v, f"filters.{k}") for k, v in self.mapping(top.get("filters", _EMPTY), "filters").items()},
            time_zone=self.zone(top["time_zone"]) if "time_zone" in top else "UTC",
            synonyms=types[0],
            vocabulary=types[1],
            **self.checks(top.get("checks", _EMPTY)),
            properties=self.flag(top["properties"], "properties") if "properties" in top else True,
            add_properties={
                k: self.text(v, f"add_properties.{k}")
                for k, v in self.mapping(top.get("add_properties", _EMPTY), "add_properties").items()
            },
            roles=self.roles(top["roles"], types[1]) if "roles" in top else Roles(),
            text=text,
        )
        return spec

    def fields(self, node: yaml.Node) -> dict[str, str]:
        given = self.mapping(node, "fields", FIELDS)
        missing = [f for f in REQUIRED_FIELDS if f not in given]
        if missing:
            raise self.fail(node, f"fields: missing {', '.join(missing)} (required: {', '.join(REQUIRED_FIELDS)})")
        return {k: self.text(v, f"fields.{k}") for k, v in given.items()}

    def input(self, node: yaml.Node) -> Input:
        given = self.mapping(node, "input", INPUT_KEYS)
        fmt = self.text(given["format"], "input.format") if "format" in given else "csv"
        if fmt not in FORMATS:
            raise self.fail(given["format"], f"input.format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
        out = Input(format=fmt)
        for key in ("delimiter", "quote"):
            if key in given:
                value = self.text(given[key], f"input.{key}", allow_empty=True)
                if len(value) != 1:
                    raise self.fail(given[key], f"input.{key}: expected one character, got {value!r}")
                out = _replace(out, **{key: value})
        if "encoding" in given:
            out = _replace(out, encoding=self.encoding(given["encoding"]))
        if "header" in given:
            out = _replace(out, header=self.flag(given["header"], "input.header"))
        for key in ("columns", "sheets"):
            if key in given:
                out = _replace(out, **{key: self.names(given[key], f"input.{key}")})
        if not out.header and not out.columns:
            raise self.fail(node, "input.columns: a file without a header line needs its column names")
        return out

    def encoding(self, node: yaml.Node) -> str:
        import codecs

        value = self.text(node, "input.encoding")
        try:
            codecs.lookup(value)
        except LookupError:
            raise self.fail(node, f"input.encoding: unknown encoding {value!r} (e.g. utf-8, latin-1, cp1252)") from None
        return value

    def zone(self, node: yaml.Node) -> str:
        value = self.text(node, "time_zone")
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise self.fail(node, f"time_zone: unknown zone {value!r} (an IANA name such as Europe/London, or UTC)") from None
        return value

    def checks(self, node: yaml.Node) -> dict[str, Any]:
        given = self.mapping(node, "checks", ("integer", "positive"))
        integer = self.names(given["integer"], "checks.integer") if "integer" in given else ()
        wrong = [f for f in integer if f not in FIELDS]
        if wrong:
            raise self.fail(given["integer"], f"checks.integer: {', '.join(wrong)} not a field ({', '.join(FIELDS)})")
        positive = self.names(given["positive"], "checks.positive") if "positive" in given else ()
        if set(positive) - {"price"}:
            raise self.fail(given["positive"], "checks.positive: only price can be required positive")
        return {"integer_fields": integer, "positive_price": bool(positive)}

    def event_types(self, node: yaml.Node) -> tuple[dict[str, str], tuple[str, ...] | None]:
        given = self.mapping(node, "event_types", ("synonyms", "vocabulary"))
        synonyms = {
            k: self.text(v, f"event_types.synonyms.{k}")
            for k, v in self.mapping(given.get("synonyms", _EMPTY), "event_types.synonyms").items()
        }
        vocabulary = self.names(given["vocabulary"], "event_types.vocabulary") if "vocabulary" in given else None
        return synonyms, vocabulary

    def roles(self, node: yaml.Node, vocabulary: tuple[str, ...] | None) -> Roles:
        given = self.mapping(node, "roles", ROLE_KEYS)
        roles = Roles()
        for key in ("active", "funnel", "revenue", "refund"):
            if key in given:
                value = self.scalar(given[key], f"roles.{key}") if isinstance(given[key], yaml.ScalarNode) else None
                if key == "active" and value == "all":
                    continue
                names = (
                    ()
                    if isinstance(given[key], yaml.ScalarNode) and value in (None, "none")
                    else self.names(given[key], f"roles.{key}")
                )
                roles = _replace(roles, **{key: names})
        if "signup" in given:
            roles = _replace(roles, signup=self.text(given["signup"], "roles.signup"))
        if "funnel_labels" in given:
            labels = self.names(given["funnel_labels"], "roles.funnel_labels")
            if len(labels) != len(roles.funnel):
                raise self.fail(
                    given["funnel_labels"],
                    f"roles.funnel_labels: expected one label per funnel step ({len(roles.funnel)}), got {len(labels)}",
                )
            roles = _replace(roles, funnel_labels=labels)
        if roles.funnel and not 2 <= len(roles.funnel) <= MAX_FUNNEL_STEPS:
            raise self.fail(
                given.get("funnel", node), f"roles.funnel: expected 2-{MAX_FUNNEL_STEPS} steps or none, got {len(roles.funnel)}"
            )
        if set(roles.revenue) & set(roles.refund):
            raise self.fail(given.get("refund", node), "roles.refund: an event type is revenue or refund, not both")
        unknown = (
            sorted(Spec(name="", fields={}, roles=roles).role_events() - set(vocabulary or ())) if vocabulary is not None else []
        )
        if unknown:
            raise self.fail(node, f"roles: {', '.join(unknown)} not in event_types.vocabulary ({', '.join(vocabulary or ())})")
        return roles


_EMPTY = yaml.MappingNode(tag="tag:yaml.org,2002:map", value=[])


def _replace(obj, **changes):
    import dataclasses

    return dataclasses.replace(obj, **changes)
