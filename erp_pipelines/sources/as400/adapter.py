"""The AS400 source adapter: whitelisted, guarded, streamed reads through ODBC into Arrow batches."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager

import arrow_odbc
import numpy as np
import pyarrow as pa
import pyodbc

from erp_pipelines.catalog.spec import TableSpec
from erp_pipelines.engine.decoders import CyymmddHhmmssTimestamp
from erp_pipelines.sources.as400 import sql
from erp_pipelines.sources.as400.connection import As400Settings
from erp_pipelines.sources.base import (
    InvalidWatermarkError,
    RecordKey,
    SchemaDriftError,
    TableNotAllowedError,
    Watermark,
    exact_keys,
    require_source_columns,
)

# Keys per replay statement: keeps statements short on both Db2 for i and the stand-in.
REPLAY_CHUNK = 200


def to_cyymmdd_hhmmss(moment: dt.datetime) -> tuple[int, int]:
    return (
        (moment.year - 1900) * 10_000 + moment.month * 100 + moment.day,
        moment.hour * 10_000 + moment.minute * 100 + moment.second,
    )


class As400Extraction:
    """One streamed read; tracks the newest valid change stamp for the next watermark."""

    def __init__(
        self, settings: As400Settings, spec: TableSpec, statements: list[sql.Statement],
        clock: dt.datetime | None = None,
    ) -> None:
        self._settings = settings
        self._spec = spec
        self._statements = statements
        self._clock = clock
        self._newest: dt.datetime | None = None
        self._future_rows = 0

    def batches(self) -> Iterator[pa.RecordBatch]:
        for statement in self._statements:
            yield from self._read(statement)

    def _read(self, statement: sql.Statement) -> Iterator[pa.RecordBatch]:
        try:
            reader = arrow_odbc.read_arrow_batches_from_odbc(
                query=statement.sql,
                connection_string=self._settings.connection_string(
                    with_credentials=True, bind_on_server=not statement.streamed
                ),
                parameters=list(statement.parameters),
                batch_size=self._settings.batch_rows,
                login_timeout_sec=self._settings.login_timeout_seconds,
            )
        except arrow_odbc.Error as exc:
            raise self._settings.connection_error(f"reading {self._spec.source_table} failed", exc) from None
        try:
            for batch in reader:
                if self._clock is not None:
                    self._track_change_stamps(batch, self._clock)
                yield batch
        except arrow_odbc.Error as exc:
            raise self._settings.connection_error(
                f"reading {self._spec.source_table} failed mid-stream", exc
            ) from None

    def _track_change_stamps(self, batch: pa.RecordBatch, clock: dt.datetime) -> None:
        """The newest stamp not past the server's clock taken before the read: a row stamped in the future
        (clock skew, a job stamping the next business day) loads, but must not move the watermark past
        rows still to be written now; it is read again by every run until its stamp is in the past."""
        tracking = self._spec.change_tracking
        if tracking is None:
            return
        stamps = CyymmddHhmmssTimestamp()([batch.column(name) for name in tracking.columns]).values
        micros = stamps.cast(pa.int64()).to_numpy(zero_copy_only=False)
        valid = ~stamps.is_null().to_numpy(zero_copy_only=False)
        limit = int((clock - dt.datetime(1970, 1, 1)).total_seconds() * 1_000_000)
        self._future_rows += int((valid & (micros > limit)).sum())
        valid &= micros <= limit
        if valid.any():
            newest = dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=int(np.max(micros[valid])))
            self._newest = max(self._newest or newest, newest)

    def watermark(self) -> Watermark | None:
        return {"changed_at": self._newest.isoformat()} if self._newest else None

    def deleted_keys(self) -> pa.RecordBatch | None:
        """IBM i tables without journals cannot report deletions; full syncs detect them."""
        return None

    def notes(self) -> dict[str, object]:
        if self._clock is None:
            return {}
        return {"source_clock": self._clock.isoformat(), "future_stamped_rows": self._future_rows}


class As400Source:
    """Reads whitelisted AS400 tables; every statement is generated, guarded and parameterised."""

    system = "as400"

    def __init__(self, settings: As400Settings) -> None:
        self.settings = settings

    def table_of(self, spec: TableSpec) -> sql.QualifiedTable:
        """The spec's table, refused unless it is both in the catalog and in AS400_ALLOWED_TABLES, and
        its column names are IBM i identifiers; all checked before any connection."""
        if spec.source_system != self.system:
            raise TableNotAllowedError(f"{spec.entity} is not an AS400 table")
        try:
            table = sql.QualifiedTable.parse(spec.source_table)
            for name in spec.source_columns:
                sql.quote_identifier(name)
        except sql.UnsafeSqlError as exc:
            raise sql.UnsafeSqlError(f"catalog entry {spec.entity!r}: {exc}") from None
        if table not in self.settings.allowed_tables:
            allowed = ", ".join(sorted(str(t) for t in self.settings.allowed_tables)) or "none"
            raise TableNotAllowedError(
                f"table {spec.source_table} is not whitelisted (AS400_ALLOWED_TABLES allows: {allowed})"
            )
        return table

    def _query(self, statement: sql.Statement, table: sql.QualifiedTable) -> list[pyodbc.Row]:
        sql.guard_select(statement.sql, [table])
        with self.settings.connect() as connection:
            try:
                return connection.cursor().execute(statement.sql, *statement.parameters).fetchall()
            except pyodbc.Error as exc:
                raise self.settings.connection_error(f"query on {table} failed", exc) from None

    def check_columns(self, spec: TableSpec) -> None:
        """Fails naming the columns when the source table no longer matches the spec (missing or new ones)."""
        table = self.table_of(spec)
        present = [row[0].strip() for row in self._query(sql.table_columns(table), table)]
        if not present:
            raise SchemaDriftError(f"table {table} was not found in the AS400 catalog (QSYS2.SYSCOLUMNS2)")
        require_source_columns(spec, present, str(table), complete=True)

    @staticmethod
    def changed_since(spec: TableSpec, since: Watermark | None) -> tuple[int, int] | None:
        """The (CYYMMDD, HHMMSS) to read from: the watermark less the overlap window."""
        if since is None or spec.change_tracking is None:
            return None
        value = since.get("changed_at") if isinstance(since, dict) else None
        try:
            moment = dt.datetime.fromisoformat(value)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise InvalidWatermarkError(
                f"{spec.entity}: the stored watermark {since!r} (sync_watermark) holds no change timestamp; "
                "run a full sync to replace it"
            ) from None
        return to_cyymmdd_hhmmss(moment - dt.timedelta(seconds=spec.change_tracking.overlap_seconds))

    @contextmanager
    def extract(self, spec: TableSpec, since: Watermark | None) -> Iterator[As400Extraction]:
        table = self.table_of(spec)
        changed_since = self.changed_since(spec, since)
        self.check_columns(spec)
        statement = sql.select_rows(
            table,
            spec.source_columns,
            changed_since=changed_since,
            change_columns=spec.change_tracking.columns if spec.change_tracking else (),
            order_by=spec.source_key_columns,
        )
        sql.guard_select(statement.sql, [table])
        clock = self.source_clock(table) if spec.change_tracking else None
        yield As400Extraction(self.settings, spec, [statement], clock)

    def record_keys(self, spec: TableSpec, raw: pa.RecordBatch) -> list[RecordKey]:
        """Db2 for i compares CHAR values as if the shorter were padded with blanks ("Character string
        comparisons", Db2 for i SQL reference): trailing blanks do not tell two keys apart, leading ones do."""
        return exact_keys(raw, spec.source_key_columns, trailing_blanks_significant=False)

    @contextmanager
    def extract_keys(self, spec: TableSpec, keys: list[RecordKey]) -> Iterator[As400Extraction]:
        """Only the rows with these exact keys, for a replay; each value bound as it is (leading blanks kept)."""
        table = self.table_of(spec)
        key_columns = spec.source_key_columns
        split = [tuple("" if part is None else str(part) for part in key) for key in keys]
        statements = [
            sql.select_keys(table, spec.source_columns, key_columns, split[start : start + REPLAY_CHUNK])
            for start in range(0, len(split), REPLAY_CHUNK)
        ]
        for statement in statements:
            sql.guard_select(statement.sql, [table])
        self.check_columns(spec)
        yield As400Extraction(self.settings, spec, statements)

    def source_clock(self, table: sql.QualifiedTable) -> dt.datetime:
        """The IBM i's CURRENT TIMESTAMP (its local time, as the change stamps are)."""
        value = self._query(sql.source_clock(), table)[0][0]
        return value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value)[:26])

    def count_rows(self, spec: TableSpec) -> int:
        table = self.table_of(spec)
        return int(self._query(sql.count_rows(table), table)[0][0])

    def change_markers(self, specs: list[TableSpec]) -> dict[str, str]:
        """A cheap "did anything change" marker per table: its newest change stamp and its row count.

        One connection for all tables; the stamp is one row read through the change-stamp index, the
        count comes from the table statistics on IBM i. Deletions move the count.
        """
        markers: dict[str, str] = {}
        statements = []
        for spec in specs:
            table = self.table_of(spec)
            tracked = spec.change_tracking is not None
            latest = sql.latest_change(table, spec.change_tracking.columns) if tracked else None
            statements.append((spec, table, latest, sql.count_rows(table)))
        with self.settings.connect() as connection:
            cursor = connection.cursor()
            for spec, table, latest, count in statements:
                parts = []
                for statement in filter(None, (latest, count)):
                    sql.guard_select(statement.sql, [table])
                    row = cursor.execute(statement.sql, *statement.parameters).fetchone()
                    parts.append("empty" if row is None else ".".join(str(int(v)) for v in row))
                markers[spec.entity] = "/".join(parts)
        return markers

    def test_connection(self) -> str:
        """Opens a session and runs the probe; returns the server's answer as text."""
        with self.settings.connect() as connection:
            probe = sql.connection_probe()
            sql.guard_select(probe.sql, [])
            return str(connection.cursor().execute(probe.sql).fetchone()[0])
