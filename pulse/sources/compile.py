"""One compiler from a source spec to Spark columns, for every job that reads a source.

``compile_spec`` checks every expression of the spec (Spark's parse, the allow-list) and resolves it
against the input's columns, so a wrong spec fails before anything runs, naming the field, the
expression and the columns the input has. ``mapped`` then adds, next to the input's columns:

- ``f_<field>`` for each event field the spec gives (the expression's value, as text where the
  rules read text, ``f_event_time`` as the UTC instant when the expression yields a timestamp);
- ``_filtered``: the name of the first filter that leaves the row out on purpose (NULL: kept);
- ``_properties``: the input's columns no field reads, and the spec's added properties, as JSON.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from pulse.sources import expressions
from pulse.sources.spec import Spec, SpecError


@dataclass(frozen=True)
class Compiled:
    spec: Spec
    columns: tuple[str, ...]  # the input's columns
    read: frozenset[str]  # the input columns the fields and filters read
    time_type: T.DataType  # what the event_time expression yields


def _expressions(spec: Spec) -> dict[str, str]:
    """Every expression of the spec by where it is written."""
    out = {f"fields.{k}": v for k, v in spec.fields.items()}
    out |= {f"filters.{k}": v for k, v in spec.filters.items()}
    out |= {f"add_properties.{k}": v for k, v in spec.add_properties.items()}
    return out


def compile_spec(spark, spec: Spec, frame: DataFrame, inputs: list[str] | tuple[str, ...] | None = None) -> Compiled:
    """The spec checked against ``frame``'s columns; SpecError says what is wrong, before anything is read.
    ``inputs``: the columns that came from the source (default: all but the ``_``-prefixed ones the
    readers add), which the raw record and the properties hold."""
    read: set[str] = set()
    for where, text in _expressions(spec).items():  # every expression allowed, before any is analysed
        try:
            read |= {c.lower() for c in expressions.parse(spark, text).columns}
        except expressions.ExpressionError as exc:
            raise SpecError(f"{spec.name}: {where}: {text!r}: {exc}") from None
    for where, text in _expressions(spec).items():
        _resolve(frame, spec, where, text)
    time_type = frame.select(F.expr(spec.fields["event_time"])).schema.fields[0].dataType
    if not isinstance(time_type, T.StringType | T.TimestampType | T.TimestampNTZType | T.DateType | T.NumericType):
        raise SpecError(
            f"{spec.name}: fields.event_time: {spec.fields['event_time']!r} gives {time_type.simpleString()}; "
            "expected text, a timestamp, a date or an epoch number"
        )
    columns = tuple(inputs) if inputs is not None else tuple(c for c in frame.columns if not c.startswith("_"))
    return Compiled(spec, columns, frozenset(read), time_type)


def _resolve(frame: DataFrame, spec: Spec, where: str, text: str) -> None:
    from pyspark.errors import AnalysisException

    try:
        frame.select(F.expr(text)).schema  # noqa: B018 - analysis only: resolves names and types, reads nothing
    except AnalysisException as exc:
        reason = str(exc).split("\n")[0].split(" SQLSTATE")[0][:300]
        columns = ", ".join(f"`{c}`" if not c.isidentifier() else c for c in frame.columns)
        hint = f"; write \"'{text}'\" for the text {text}" if text.isidentifier() else ""
        raise SpecError(f"{spec.name}: {where}: {text!r}: {reason}; the input's columns are: {columns}{hint}") from None


def mapped(compiled: Compiled, frame: DataFrame) -> DataFrame:
    """``frame`` with the spec's fields (``f_*``), the filter verdict and the properties."""
    spec = compiled.spec
    fields = [_field(compiled, name, text).alias(f"f_{name}") for name, text in spec.fields.items()]
    return frame.select("*", *fields, _filtered(spec).alias("_filtered"), _properties(compiled).alias("_properties"))


def _field(compiled: Compiled, name: str, text: str) -> Column:
    value = F.expr(text)
    if name != "event_time":
        return value.cast("string")
    zone = compiled.spec.time_zone
    if isinstance(compiled.time_type, T.TimestampType | T.TimestampNTZType | T.DateType):
        # a wall-clock time of the spec's zone (Spark parsed it in the job's zone, UTC): to the instant
        return value.cast("timestamp") if zone == "UTC" else F.to_utc_timestamp(value.cast("timestamp"), zone)
    if isinstance(compiled.time_type, T.NumericType):
        return value.cast("bigint").cast("string")  # an epoch number: the rules read it by its digits
    return value


def _filtered(spec: Spec) -> Column:
    verdict = F.lit(None).cast("string")
    for name, condition in reversed(spec.filters.items()):
        verdict = F.when(~F.coalesce(F.expr(condition), F.lit(False)), F.lit(name)).otherwise(verdict)
    return verdict


def _properties(compiled: Compiled) -> Column:
    spec = compiled.spec
    keep = [c for c in compiled.columns if spec.properties and c.lower() not in compiled.read]
    pairs = [F.col(f"`{c}`").alias(c) for c in keep]
    pairs += [F.expr(text).alias(name) for name, text in spec.add_properties.items()]
    if not pairs:
        return F.lit("{}")
    return F.to_json(F.struct(*pairs))
