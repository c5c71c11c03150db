"""Helpers shared by the fault-injection tests (erp_pipelines_tests/faults/).

`source_checksum` and `target_checksum` fingerprint a spec's table on both sides *independently of the
engine*: each decoder of the spec has a SQL twin here, so the source side is decoded by PostgreSQL, not by
the code under test, and a row the engine lost, duplicated or mangled changes the digest.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg2
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from erp_pipelines.core.decoders import Boolean, Decimal, Flag, Integer, Text, TrimmedText
from erp_pipelines.core.spec import Column, TableSpec
from erp_pipelines.sources.as400.adapter import As400Source
from erp_pipelines.sources.as400.decoders import CyymmddDate, CyymmddHhmmssTimestamp
from erp_pipelines.sources.as400.resource import As400Resource
from erp_pipelines.sources.legacy_4d.adapter import Legacy4DSource
from erp_pipelines.sources.legacy_4d.client import Legacy4DClient
from erp_pipelines.sources.legacy_4d.decoders import FourDDate, FourDTime
from erp_pipelines.sources.legacy_4d.session import SessionJar
from erp_pipelines.sources.legacy_4d.tables import CategoryName
from erp_pipelines_tests.support.legacy_4d import PASSWORD, USERNAME
from erp_sandbox.legacy_4d.server import EmulatorServer


@dataclass(frozen=True)
class Checksum:
    """How many live rows a table holds and the md5 of all of them, every mapped column, in key order."""

    rows: int
    md5: str


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _decoded_sql(column: Column) -> str:
    """The SQL twin of a column's decoder, over the raw source column(s) of alias `s`."""
    raw = [f"s.{_q(name)}" for name in column.source]
    decoder = column.decoder
    if isinstance(decoder, CategoryName):  # trailing spaces dropped, all-whitespace (NBSP too) is no category
        trimmed = f"rtrim({raw[0]}::text, ' ')"
        return f"case when {trimmed} ~ '^[[:space:]\u00a0]*$' then null else {trimmed} end"
    if isinstance(decoder, TrimmedText):
        trimmed = f"rtrim({raw[0]}::text, ' ')"
        return f"nullif({trimmed}, '')" if decoder.blank_as_null else trimmed
    if isinstance(decoder, Flag):
        true, false = (", ".join(_literal(v) for v in values.to_pylist())
                       for values in (decoder.true_values, decoder.false_values))
        return f"case when btrim({raw[0]}) in ({true}) then true when btrim({raw[0]}) in ({false}) then false end"
    if isinstance(decoder, FourDTime):
        return f"({raw[0]} * interval '1 millisecond')"
    if isinstance(decoder, CyymmddDate):  # 0 is "no date"; C=0 19xx, C=1 20xx
        full = f"(19000000 + {raw[0]}::int)"
        return f"case when {raw[0]} = 0 then null else make_date({full} / 10000, {full} / 100 % 100, {full} % 100) end"
    if isinstance(decoder, CyymmddHhmmssTimestamp):
        date, time = (f"{value}::int" for value in raw)
        return (f"make_timestamp((19000000 + {date}) / 10000, {date} / 100 % 100, {date} % 100, "
                f"{time} / 10000, {time} / 100 % 100, {time} % 100)")
    if len(raw) == 1 and isinstance(decoder, Integer | Text | Decimal | Boolean | FourDDate):
        return raw[0]  # the value itself; the cast to the target type below does the rest
    raise ValueError(f"no SQL twin for decoder {decoder!r} of {column.target}")


def _digest_sql(table: str, values: list[str], keys: list[str], where: str = "true") -> str:
    row, key = ", ".join(values), ", ".join(keys)
    return (f"select count(*), md5(coalesce(string_agg(row({row})::text, E'\\n' "
            f"order by row({key})::text collate \"C\"), '')) from {table} where {where}")


def _typed(spec: TableSpec, expression: Callable[[Column], str]) -> dict[str, str]:
    dialect = postgresql.dialect()
    return {c.target: f"cast({expression(c)} as {c.sql_type.compile(dialect=dialect)})" for c in spec.columns}


def source_checksum(dsn: str, spec: TableSpec) -> Checksum:
    """Every row of the source table (4D store or AS400 stand-in), decoded and typed by the spec's mapping."""
    assert spec.distinct_values_of is None, "derived tables have no source rows to compare"
    values = _typed(spec, _decoded_sql)
    table = ".".join(_q(part) for part in spec.source_table.split(".")) + " s"
    with psycopg2.connect(dsn) as connection, connection.cursor() as cursor:
        cursor.execute(_digest_sql(table, list(values.values()), [values[k] for k in spec.business_key]))
        rows, md5 = cursor.fetchone()
    connection.close()
    return Checksum(rows, md5)


def target_checksum(engine: sa.Engine, spec: TableSpec) -> Checksum:
    """Every live row of the target table, every mapped column; fails if a business key is stored twice."""
    values = _typed(spec, lambda c: f"t.{_q(c.target)}")
    table = f"{_q(spec.target_table)} t"
    keys = ", ".join(f"t.{_q(k)}" for k in spec.business_key)
    with engine.connect() as connection:
        duplicates = connection.exec_driver_sql(
            f"select count(*) - count(distinct ({keys})) from {table}").scalar_one()
        rows, md5 = connection.exec_driver_sql(_digest_sql(
            table, list(values.values()), [values[k] for k in spec.business_key], "t.deleted_at is null")).one()
    assert duplicates == 0, f"{spec.target_table} holds {duplicates} duplicate business keys"
    return Checksum(rows, md5)


def sync_runs(engine: sa.Engine, entity: str) -> list[sa.Row]:
    """The entity's audit trail, oldest first."""
    with engine.connect() as connection:
        return list(connection.execute(sa.text(
            "select id, mode, status, processed, created, updated, unchanged, deleted, rejected, error_message, "
            "watermark_before, watermark_after from sync_run where entity = :entity order by id"), {"entity": entity}))


def watermark(engine: sa.Engine, entity: str) -> Any:
    with engine.connect() as connection:
        return connection.execute(sa.text("select value from sync_watermark where entity = :entity"),
                                  {"entity": entity}).scalar_one_or_none()


def open_errors(engine: sa.Engine, entity: str) -> int:
    with engine.connect() as connection:
        return connection.execute(sa.text(
            "select count(*) from sync_error where entity = :entity and resolved_at is null"),
            {"entity": entity}).scalar_one()


_JARS: weakref.WeakKeyDictionary[EmulatorServer, SessionJar] = weakref.WeakKeyDictionary()


def deployment_jar(server: EmulatorServer) -> SessionJar:
    """The session jar of "the deployment" talking to this server: every source built for it shares it, as
    every process of a real deployment shares its session file."""
    return _JARS.setdefault(server, SessionJar())


def auth_mode_of(server: EmulatorServer) -> str:
    """The login mode a deployment configures for this server (LEGACY_API_AUTH)."""
    return "authentify" if server.config.force_login else "directory"


def login_path(server: EmulatorServer) -> str:
    return "$catalog/authentify" if server.config.force_login else "$directory/login"


def legacy_source(
    server: EmulatorServer, *, batch_rows: int = 100, overlap_stamps: int = 0, **client: Any,
) -> Legacy4DSource:
    """The 4D source as production builds it (one client per read, one shared session), with small pages and
    batches so faults land mid-read, a short retry backoff so the tests stay fast, and no overlap so run counts
    are exact (the overlap has its own test in engine/test_sync_legacy_4d.py)."""
    options: dict[str, Any] = {"page_size": 50, "backoff_seconds": 0.05, "timeout": 5.0,
                               "jar": deployment_jar(server), "auth_mode": auth_mode_of(server)} | client
    credentials = (options.pop("username", USERNAME), options.pop("password", PASSWORD))
    return Legacy4DSource(lambda: Legacy4DClient(server.host, server.port, *credentials, **options),
                          batch_rows=batch_rows, overlap_stamps=overlap_stamps)


SOURCE_ROWS = (
    'select rtrim("ITEMNO"), rtrim("WHSE"), "ONHAND", "ALLOC", "ONORD" from "INVENTORYLIB"."INVENTORY" '
    'order by 1, 2'
)
TARGET_ROWS = (
    "select item_number, warehouse, on_hand, allocated, on_order from product_stock "
    "where deleted_at is null order by 1, 2"
)


def small_batch_source(as400: As400Resource) -> As400Source:
    """The AS400 source with small batches, so a cut lands in the middle of the read, after committed batches."""
    return As400Source(as400.replaced(batch_rows=2_000))


def stock_source_rows(owner_url: str) -> list[tuple]:
    """Every stock row of the stand-in, as the target should hold it, in key order."""
    with psycopg2.connect(owner_url) as connection, connection.cursor() as cursor:
        cursor.execute(SOURCE_ROWS)
        return cursor.fetchall()


def stock_target_rows(app_db: sa.Engine) -> list[tuple]:
    """Every live stock row of the target in key order; fails if a key is stored twice."""
    with app_db.connect() as connection:
        rows = [tuple(row) for row in connection.execute(sa.text(TARGET_ROWS))]
        duplicates = connection.execute(sa.text(
            "select count(*) - count(distinct (item_number, warehouse)) from product_stock")).scalar_one()
    assert duplicates == 0
    return rows
