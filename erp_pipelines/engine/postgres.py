"""PostgreSQL helpers of the engine: identifier quoting and the one COPY path (binary from Arrow, or CSV)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from typing import Any

import pgpq
import pyarrow as pa
import sqlalchemy as sa


def quote(name: str) -> str:
    """Quotes a spec-defined identifier (never user input) for PostgreSQL."""
    return '"' + name.replace('"', '""') + '"'


def columns(names: Iterable[str], prefix: str = "") -> str:
    return ", ".join(f"{prefix}{quote(name)}" for name in names)


def copy_arrow(connection: sa.Connection, table_name: str, data: pa.Table) -> None:
    """COPY in PostgreSQL's binary format, encoded straight from Arrow (no text round trip)."""
    if data.num_rows == 0:
        return
    encoder = pgpq.ArrowToPostgresBinaryEncoder(data.schema)
    buffer = io.BytesIO()
    buffer.write(encoder.write_header())
    for batch in data.to_batches():
        buffer.write(encoder.write_batch(batch))
    buffer.write(encoder.finish())
    _copy(connection, table_name, data.column_names, buffer, "format binary")


def copy_csv(connection: sa.Connection, table_name: str, names: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
    """COPY of Python rows as CSV, for columns binary COPY cannot fill from Arrow (jsonb's binary form)."""
    if not rows:
        return
    buffer = io.StringIO()
    csv.writer(buffer, quoting=csv.QUOTE_ALL, lineterminator="\n").writerows(rows)
    _copy(connection, table_name, names, buffer, "format csv")


def _copy(connection: sa.Connection, table_name: str, names: Sequence[str], buffer: io.IOBase, options: str) -> None:
    buffer.seek(0)
    cursor = connection.connection.driver_connection.cursor()
    try:
        cursor.copy_expert(f"copy {quote(table_name)} ({columns(names)}) from stdin with ({options})", buffer,
                           size=1 << 20)
    finally:
        cursor.close()
