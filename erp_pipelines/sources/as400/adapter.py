"""The AS400 source adapter: whitelisted, guarded, streamed reads through ODBC into Arrow batches.

Before the first batch the file's catalog entry is read (QSYS2.SYSCOLUMNS2): which columns exist under which
name (a DDS field has a 10-character system name and may have a long SQL alias), and which are CCSID 65535.
A row the driver cannot deliver (SQL0802, invalid packed or zoned decimal data) does not stop the read: the
rows around it are narrowed down by key, the rest load, and the undeliverable ones are handed to the engine
with the stored bytes of their bad fields (HEX), which the decoders reject naming SQL0802.
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import arrow_odbc
import numpy as np
import pyarrow as pa
import pyodbc

from erp_pipelines.core.source import (
    ChangeRange,
    ChangeRangeError,
    InvalidWatermarkError,
    PermanentSourceError,
    RecordKey,
    SchemaDriftError,
    SourceChange,
    TableNotAllowedError,
    Watermark,
    exact_keys,
    range_bounds,
    require_source_columns,
)
from erp_pipelines.core.spec import TableSpec
from erp_pipelines.sources.as400 import sql
from erp_pipelines.sources.as400.connection import As400Settings
from erp_pipelines.sources.as400.decoders import CYYMMDD_YEARS, CyymmddHhmmssTimestamp, EbcdicText
from erp_pipelines.sources.as400.journal import (
    READABLE_RECEIVERS,
    Journal,
    JournalExtraction,
    Position,
    Receiver,
    end_of_chain,
    position_problem,
    receiver_from_row,
    retention_warning,
)
from erp_pipelines.sources.as400.layout import FOR_BIT_DATA, FileLayout, SourceColumn
from erp_pipelines.sources.as400.record_image import CATALOG_COLUMNS, RecordLayout

# Keys per replay (and per narrowing) statement: keeps statements short on both Db2 for i and the stand-in.
REPLAY_CHUNK = 200
# Change stamps further in the future than this are sentinels (9991231), not a change marker.
FUTURE_TOLERANCE = dt.timedelta(days=1)
# Db2 for i "SQL0802 Data conversion or data mapping error": the driver message carries the message id
# ("[IBM][System i Access ODBC Driver][DB2 for i5/OS]SQL0802 - Data conversion or data mapping error.").
# Invalid packed or zoned decimal data (blanks, x'40', from CPYF FMTOPT(*NOCHK) or program-described
# writes) raises it at fetch (IT Jungle "SQL and Invalid Decimal Data", 2013; IBM Support "Correcting Decimal
# Data Errors"). Retrying reads the same bytes again, so it is never treated as transient.
_DATA_MAPPING_ERROR = re.compile(r"\bSQL0802\b")


def to_cyymmdd_hhmmss(moment: dt.datetime) -> tuple[int, int]:
    return (
        (moment.year - 1900) * 10_000 + moment.month * 100 + moment.day,
        moment.hour * 10_000 + moment.minute * 100 + moment.second,
    )


def stamp_bound(bound: str, text: str) -> tuple[int, int]:
    """One end of a backfill range as the (CYYMMDD, HHMMSS) pair it is compared with: an ISO date
    (`2026-11-01`, midnight) or date and time (`2026-11-01T08:30:00`) in the IBM i's local time, as its
    programs write the stamps; refused naming `bound` when it is none, carries an offset, or lies outside the
    years CYYMMDD can hold."""
    try:
        moment = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ChangeRangeError(bound, f"{bound} {text!r} is not a date (YYYY-MM-DD) or a date and time "
                                      "(YYYY-MM-DDTHH:MM:SS)") from None
    if moment.tzinfo is not None:
        raise ChangeRangeError(bound, f"{bound} {text!r} carries a UTC offset: AS400 change stamps are the IBM i's "
                                      "local time, without one; give the local date and time")
    if moment.year not in CYYMMDD_YEARS:
        raise ChangeRangeError(bound, f"{bound} {text!r} cannot be a CYYMMDD change stamp, which covers "
                                      f"{CYYMMDD_YEARS.start}-01-01 to {CYYMMDD_YEARS.stop - 1}-12-31")
    return to_cyymmdd_hhmmss(moment)


def stamp_range(changes: ChangeRange) -> tuple[tuple[int, int], tuple[int, int] | None]:
    """The (CYYMMDD, HHMMSS) pairs a backfill reads from (included) and up to (excluded)."""
    return range_bounds(changes, stamp_bound)


class As400DataMappingError(PermanentSourceError):
    """Db2 for i could not deliver data of a file (SQL0802) and the rows at fault could not be set apart."""


def is_data_mapping_error(exc: Exception) -> bool:
    return bool(_DATA_MAPPING_ERROR.search(str(exc)))


def bound_connection(settings: As400Settings, what: str) -> arrow_odbc.Connection:
    """An arrow-odbc connection whose statements bind their parameters at the server (they carry names or keys)."""
    try:
        return arrow_odbc.connect(
            connection_string=settings.connection_string(with_credentials=True, bind_on_server=True),
            login_timeout_sec=settings.login_timeout_seconds,
        )
    except arrow_odbc.Error as exc:
        raise settings.connection_error(what, exc) from None


class As400Extraction:
    """One streamed read; tracks the newest valid change stamp for the next watermark.

    A statement that fails with SQL0802 is resumed from the first row it did not deliver: the keys of the
    rest are listed, read in chunks, and a chunk that fails again is halved until the undeliverable rows are
    alone (see `_narrow`).
    """

    def __init__(
        self,
        settings: As400Settings,
        spec: TableSpec,
        statements: list[sql.Statement],
        *,
        layout: FileLayout | None = None,
        key_listing: sql.Statement | None = None,
        chunks: list[list[tuple]] | None = None,
        clock: dt.datetime | None = None,
        anchor: Watermark | None = None,
    ) -> None:
        """`layout` maps the spec's names to the file's (default: the same names); `key_listing` lists the
        keys of the (single) statement in its order, `chunks` are the keys each statement reads (replay): how
        a statement that hits SQL0802 is resumed. `clock` is the server's time before the read: the
        watermark never moves past it (no clock: no watermark, as in a replay). `anchor` is the watermark of a full
        read of a journaled file: the journal position taken before the read, where the next run continues."""
        self._settings = settings
        self._spec = spec
        self._layout = layout or FileLayout(
            sql.QualifiedTable.parse(spec.source_table), (), {name: name for name in spec.source_columns}
        )
        self._statements = statements
        self._key_listing = key_listing
        self._chunks = chunks
        self._clock = clock
        self._anchor = anchor
        self._newest: dt.datetime | None = None
        self._future_rows = 0

    def batches(self) -> Iterator[pa.RecordBatch]:
        for position, statement in enumerate(self._statements):
            yield from self._read(statement, self._chunks[position] if self._chunks else None)

    def _reader(
        self, statement: sql.Statement, connection: arrow_odbc.Connection | None = None
    ) -> Iterator[pa.RecordBatch]:
        """Batches of one guarded statement, on its own connection or on `connection`."""
        sql.guard_select(statement.sql, [self._layout.table])
        options = {"parameters": list(statement.parameters), "batch_size": self._settings.batch_rows,
                   "max_bytes_per_batch": self._settings.batch_bytes,
                   "payload_text_encoding": self._settings.text_encoding}
        if connection is None:
            reader = arrow_odbc.read_arrow_batches_from_odbc(
                query=statement.sql,
                connection_string=self._settings.connection_string(
                    with_credentials=True, bind_on_server=not statement.streamed
                ),
                login_timeout_sec=self._settings.login_timeout_seconds,
                **options,
            )
        else:
            reader = connection.read_arrow_batches(query=statement.sql, **options)
        yield from reader

    def _read(self, statement: sql.Statement, chunk: list[tuple] | None) -> Iterator[pa.RecordBatch]:
        delivered = 0
        delivered_keys: dict[tuple, int] = {}
        last_key: tuple | None = None
        try:
            for batch in self._reader(statement):
                batch = self._named(batch, self._spec.source_columns)
                delivered += batch.num_rows
                for key in self._keys_of(batch) if batch.num_rows else ():
                    if chunk is None and key != last_key:  # a full read: only the last key's copies matter
                        delivered_keys.clear()
                    delivered_keys[key] = delivered_keys.get(key, 0) + 1
                    last_key = key
                yield from self._tracked(batch)
        except arrow_odbc.Error as exc:
            self._raise_unless_data_mapping(exc, " mid-stream" if delivered else "")
            if chunk is None:
                yield from self._resume(delivered, delivered_keys, exc)
            else:
                yield from self._narrowed(list(dict.fromkeys(chunk)), delivered_keys)

    def _raise_unless_data_mapping(self, exc: Exception, where: str = "") -> None:
        """Any driver error but SQL0802 ends the read as a connection error (retried), password removed."""
        if not is_data_mapping_error(exc):
            raise self._settings.connection_error(f"reading {self._spec.source_table} failed{where}", exc) from None

    def _named(self, batch: pa.RecordBatch, names: Sequence[str]) -> pa.RecordBatch:
        """The batch with the spec's column names: the select list was the spec's columns in the file's (SQL)
        names, in this order. A statement selecting other columns keeps the names the driver reports."""
        if batch.num_columns != len(names):
            return batch
        return batch.rename_columns(list(names))

    def _tracked(self, batch: pa.RecordBatch) -> Iterator[pa.RecordBatch]:
        if self._clock is not None:
            self._track_change_stamps(batch, self._clock)
        yield batch

    def _keys_of(self, batch: pa.RecordBatch | pa.Table) -> list[tuple]:
        columns = [batch.column(name).to_pylist() for name in self._spec.source_key_columns]
        return list(zip(*columns, strict=True))

    def _resume(self, delivered: int, delivered_keys: dict[tuple, int], exc: Exception) -> Iterator[pa.RecordBatch]:
        """The rest of a full or incremental read that hit SQL0802, read by key so that only the undeliverable
        rows stay out."""
        if self._key_listing is None:
            raise As400DataMappingError(f"reading {self._spec.source_table} failed: Db2 for i could not deliver "
                                        f"its data: {self._settings.redact(str(exc))}")
        yield from self._narrowed(self._remaining_keys(self._key_listing, delivered, exc), delivered_keys)

    def _remaining_keys(self, listing: sql.Statement, delivered: int, exc: Exception) -> Iterator[tuple]:
        """The keys after the first `delivered` rows, listed in the failed statement's own order (same WHERE,
        same ORDER BY), each once, streamed. A key that cannot be listed either makes the file permanently
        unreadable: nothing tells its rows apart."""
        previous: tuple | None = None
        try:
            for batch in self._reader(listing):
                for key in self._keys_of(self._named(batch, self._spec.source_key_columns)):
                    if delivered:
                        delivered -= 1
                    elif key != previous:
                        previous = key
                        yield key
        except arrow_odbc.Error as listing_error:
            table = self._spec.source_table
            raise As400DataMappingError(
                f"reading {table} failed: Db2 for i could not deliver its data ({self._settings.redact(str(exc))}) "
                f"and its key columns ({', '.join(self._spec.source_key_columns)}) cannot be listed either "
                f"({self._settings.redact(str(listing_error))}); the invalid decimal data in {table} must be "
                "corrected at the source (IBM Support: Correcting Decimal Data Errors)"
            ) from None

    def _narrowed(self, keys: Iterable[tuple], delivered_keys: dict[tuple, int]) -> Iterator[pa.RecordBatch]:
        """The rows of `keys` in chunks, less copies already delivered (the key that straddled the failure, in
        a file without a unique key), combined into batches of the usual size."""
        connection = self._bound_connection()
        pending: list[pa.RecordBatch] = []
        keys = iter(keys)
        while chunk := list(itertools.islice(keys, REPLAY_CHUNK)):
            for batch in self._narrow(connection, chunk):
                batch = self._without_delivered(batch, delivered_keys)
                if batch.num_rows:
                    pending.append(batch)
            if sum(batch.num_rows for batch in pending) >= self._settings.batch_rows:
                yield from self._flush(pending)
        yield from self._flush(pending)

    def _bound_connection(self) -> arrow_odbc.Connection:
        """One connection for the narrowing statements, whose parameters carry key values (bound at the server)."""
        return bound_connection(self._settings, f"reading {self._spec.source_table} failed")

    def _without_delivered(self, batch: pa.RecordBatch, skip: dict[tuple, int]) -> pa.RecordBatch:
        """Drops copies of the key that straddled the failure and were delivered before it."""
        if not skip:
            return batch
        keep = np.ones(batch.num_rows, dtype=bool)
        for row, key in enumerate(self._keys_of(batch)):
            if skip.get(key, 0) > 0:
                skip[key] -= 1
                keep[row] = False
        return batch.filter(pa.array(keep))

    def _flush(self, pending: list[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        """Good rows of the narrowing chunks, combined into batches of the usual size."""
        by_schema: dict[pa.Schema, list[pa.RecordBatch]] = {}
        for batch in pending:
            by_schema.setdefault(batch.schema, []).append(batch)
        pending.clear()
        for batches in by_schema.values():
            for batch in pa.Table.from_batches(batches).combine_chunks().to_batches():
                yield from self._tracked(batch)

    def _narrow(self, connection: arrow_odbc.Connection, keys: list[tuple]) -> Iterator[pa.RecordBatch]:
        """The rows of `keys`; a chunk that fails with SQL0802 is halved until each failing key is alone, and
        a failing key's row is delivered field by field, its undeliverable fields as their stored bytes."""
        statement = sql.select_keys(
            self._layout.table, self._layout.select_names(self._spec.source_columns),
            self._layout.select_names(self._spec.source_key_columns), keys,
        )
        try:
            batches = [self._named(batch, self._spec.source_columns)
                       for batch in self._reader(statement, connection)]
        except arrow_odbc.Error as exc:
            self._raise_unless_data_mapping(exc)
            if len(keys) > 1:
                middle = len(keys) // 2
                yield from self._narrow(connection, keys[:middle])
                yield from self._narrow(connection, keys[middle:])
                return
            yield self._field_by_field(connection, keys[0])
            return
        yield from batches

    def _field_by_field(self, connection: arrow_odbc.Connection, key: tuple) -> pa.RecordBatch:
        """One undeliverable row: each field read alone; a field Db2 for i cannot deliver is read with HEX
        and handed over as its stored bytes (binary), which the decoders reject naming SQL0802. A key that
        several rows hold (a file without a unique key) comes back as that many rows, its fields paired by
        position; such rows are duplicates the engine quarantines anyway."""
        key_names = self._layout.select_names(self._spec.source_key_columns)
        arrays = []
        for name in self._spec.source_columns:
            column = self._layout.sql_names[name]
            try:
                value = self._single_column(
                    connection, sql.select_keys(self._layout.table, [column], key_names, [key])
                )
            except arrow_odbc.Error as exc:
                self._raise_unless_data_mapping(exc)
                hexed = self._single_column(connection, sql.column_hex(self._layout.table, column, key_names, key))
                value = pa.array([None if text is None else bytes.fromhex(text) for text in hexed.to_pylist()],
                                 pa.binary())
            arrays.append(value)
        rows = min(len(array) for array in arrays)
        return pa.RecordBatch.from_arrays([array.slice(0, rows) for array in arrays], names=self._spec.source_columns)

    def _single_column(self, connection: arrow_odbc.Connection, statement: sql.Statement) -> pa.Array:
        batches = list(self._reader(statement, connection))
        return pa.concat_arrays([batch.column(0) for batch in batches]) if batches else pa.nulls(0)

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
        if self._anchor is not None:
            return self._anchor
        return {"changed_at": self._newest.isoformat()} if self._newest else None

    def deleted_keys(self) -> pa.RecordBatch | None:
        """IBM i tables without journals cannot report deletions; full syncs detect them."""
        return None

    def notes(self) -> dict[str, object]:
        if self._clock is None:
            return {}
        return {"source_clock": self._clock.isoformat(), "future_stamped_rows": self._future_rows}

    def changes(self) -> list[SourceChange]:
        """Reading the table itself tells no one's changes (the journal does: JournalExtraction)."""
        return []


class As400Source:
    """Reads whitelisted AS400 tables; every statement is generated, guarded and parameterised."""

    system = "as400"

    def __init__(self, settings: As400Settings) -> None:
        self.settings = settings

    @property
    def _optimize(self) -> bool:
        """OPTIMIZE FOR is Db2 for i syntax that the PostgreSQL stand-in's grammar lacks."""
        return self.settings.profile == "ibmi"

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
        if table not in self.settings.whitelist:
            allowed = ", ".join(sorted(str(t) for t in self.settings.whitelist)) or "none"
            raise TableNotAllowedError(
                f"table {spec.source_table} is not whitelisted (AS400_ALLOWED_TABLES allows: {allowed})"
            )
        return table

    def _query(self, statement: sql.Statement, table: sql.QualifiedTable) -> list[pyodbc.Row]:
        sql.guard_select(statement.sql, [table])
        with self.settings.connect() as connection:
            return self._run(connection, statement, table)

    def _run(self, connection: pyodbc.Connection, statement: sql.Statement, table: sql.QualifiedTable) -> list:
        sql.guard_select(statement.sql, [table])
        try:
            return connection.cursor().execute(statement.sql, *statement.parameters).fetchall()
        except pyodbc.Error as exc:
            if is_data_mapping_error(exc):
                raise As400DataMappingError(
                    f"query on {table} failed: Db2 for i could not deliver its data: {self.settings.redact(str(exc))}"
                ) from None
            raise self.settings.connection_error(f"query on {table} failed", exc) from None

    def read_catalog(self, table: sql.QualifiedTable, statements: Sequence[sql.Statement]) -> list[list[Any]]:
        """Catalog queries about `table` on one connection, for `erp-sync scaffold`: the guard admits the QSYS2
        catalog views only (no whitelist entry is needed to describe a file, and none is made)."""
        for statement in statements:
            sql.guard_select(statement.sql, [])
        with self.settings.connect() as connection:
            return [self._run(connection, statement, table) for statement in statements]

    def source_columns(
        self, table: sql.QualifiedTable, connection: pyodbc.Connection | None = None
    ) -> list[SourceColumn]:
        statement = sql.table_columns(table)
        rows = self._run(connection, statement, table) if connection else self._query(statement, table)
        return [
            SourceColumn(row[0].strip(), (row[1] or row[0]).strip(), (row[2] or "").strip(), int(row[3] or 0),
                         None if row[4] is None else int(row[4]), None if row[5] is None else int(row[5]))
            for row in rows
        ]

    def check_columns(self, spec: TableSpec, connection: pyodbc.Connection | None = None) -> FileLayout:
        """The file's layout, or a failure naming the columns: missing or new ones (schema drift), and
        CCSID 65535 columns the spec would read with a text decoder; a multi-member file is refused.
        On `connection` if given (a sensor tick signs on once, not once per file)."""
        table = self.table_of(spec)
        if connection is None:
            with self.settings.connect() as own:
                return self.check_columns(spec, own)
        columns = self.source_columns(table, connection)
        members = self._run(connection, sql.table_statistics(table), table)
        if not columns:
            raise SchemaDriftError(f"table {table} was not found in the AS400 catalog (QSYS2.SYSCOLUMNS2)")
        if members and members[0][0] is not None and int(members[0][0]) > 1:
            raise SchemaDriftError(
                f"{table} has {int(members[0][0])} members; SQL reads only the first member of a multi-member file "
                "(MC Press, Using Multiple Member Files with ODBC). Ask for an SQL alias per member "
                "(CREATE ALIAS LIB.NAME FOR LIB.FILE(MEMBER)) and whitelist the aliases."
            )
        known = {*spec.source_columns, *spec.ignored_source_columns}
        # A DDS field is the same column under its system name and its ALIAS (SQL) name: the spec may use
        # either (SYSCOLUMNS2: COLUMN_NAME is "the SQL column name if one exists; otherwise the system name").
        present = [column.system_name if column.system_name in known and column.name not in known else column.name
                   for column in columns]
        require_source_columns(spec, present, str(table), complete=True)
        sql_names = {spec_name: column.name for spec_name, column in zip(present, columns, strict=True)}
        layout = FileLayout(table, tuple(columns), sql_names)
        self._check_binary_columns(spec, layout, dict(zip(present, columns, strict=True)))
        return layout

    @staticmethod
    def _check_binary_columns(spec: TableSpec, layout: FileLayout, by_name: dict[str, SourceColumn]) -> None:
        """CCSID 65535 (FOR BIT DATA) columns hold EBCDIC bytes, which only EbcdicText decodes: any other
        decoder over one stops the read before it starts, naming the column."""
        wrong = [
            f"{name} (read into {column.target} with {column.decoder!r})"
            for column in spec.columns
            for name in column.source
            if by_name[name].ccsid == FOR_BIT_DATA and not isinstance(column.decoder, EbcdicText)
        ]
        if wrong:
            raise SchemaDriftError(
                f"{layout.table}: column(s) {', '.join(wrong)} are CCSID 65535 (FOR BIT DATA): the driver delivers "
                "their EBCDIC bytes untranslated (TRANSLATE=0), so a text decoder cannot read them; decode them "
                "with EbcdicText(ccsid=...) using the CCSID the data was written in (the system value QCCSID)"
            )

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
    def extract(
        self, spec: TableSpec, since: Watermark | None
    ) -> Iterator[As400Extraction | JournalExtraction]:
        """A journaled file (AS400_CHANGE_TRACKING=auto) with a journal position is read through its journal;
        otherwise the file itself, all of it or (change stamps) what changed since the watermark."""
        table = self.table_of(spec)
        position = Position.from_watermark(spec, since)  # a watermark is checked before any connection
        stamps_since = self.changed_since(spec, since) if position is None else None
        with self.settings.connect() as connection:
            layout = self.check_columns(spec, connection)
            journal = self.journal_of(spec, connection)
            chain = self.receiver_chain(connection, journal, table) if journal else []
            record_format = self._run(connection, sql.record_format(table), table) if journal and position else []
            unique = self.unique_key_index(connection, spec, layout) is not None if journal and position else True
        if journal is not None and position is not None:
            problem = position_problem(position, chain) or (
                None if position.journal == str(journal) else f"{table} is journaled to {journal} now")
            if problem:
                raise InvalidWatermarkError(f"{spec.entity}: {problem}; run a full sync")
            image_layout = RecordLayout.from_catalog(str(table), [dict(zip(CATALOG_COLUMNS, row, strict=True))
                                                                  for row in record_format])
            # Text buffers sized to the image: the driver reports HEX() results as unbounded text, and arrow-odbc
            # would otherwise allocate its largest text size for every row of a window.
            longest = 2 * (image_layout.record_length + len(image_layout.fields)) + 64
            read = functools.partial(self._journal_window, [], max_text_size=longest)
            yield JournalExtraction(spec, journal, chain, position, image_layout, read,
                                    window=self.settings.journal_window, batch_rows=self.settings.batch_rows,
                                    table_keyword=self._optimize,
                                    reread=None if unique else functools.partial(self._current_rows, spec))
            return
        anchor = end_of_chain(journal, chain).as_watermark() if journal and chain else None
        clock = self.source_clock(table) if spec.change_tracking and anchor is None else None
        yield self._file_extraction(spec, layout, changed_since=None if journal else stamps_since, clock=clock,
                                    anchor=anchor)

    def check_range(self, spec: TableSpec, changes: ChangeRange) -> None:
        """A backfill range must be two CYYMMDD/HHMMSS stamps, the second after the first (`stamp_range`)."""
        self.table_of(spec)
        stamp_range(changes)

    @contextmanager
    def extract_range(self, spec: TableSpec, changes: ChangeRange) -> Iterator[As400Extraction]:
        """The rows whose change stamp lies in the range, read from the file itself even when it is journaled: its
        CHGDAT/CHGTIM say which rows changed in the range as far back as the file goes, while the journal holds
        only what its receivers still online keep. No clock, so no watermark: a backfill leaves it as it is."""
        self.check_range(spec, changes)
        since, until = stamp_range(changes)
        with self.settings.connect() as connection:
            layout = self.check_columns(spec, connection)
        yield self._file_extraction(spec, layout, changed_since=since, changed_before=until)

    def _file_extraction(
        self, spec: TableSpec, layout: FileLayout, *, changed_since: tuple[int, int] | None = None,
        changed_before: tuple[int, int] | None = None, clock: dt.datetime | None = None,
        anchor: Watermark | None = None,
    ) -> As400Extraction:
        """A read of the file itself in key order, all of it or the rows stamped within the bounds; the same
        statement listing only the keys is how a read that hits SQL0802 resumes."""
        tracking = layout.select_names(spec.change_tracking.columns) if spec.change_tracking else []
        keys = layout.select_names(spec.source_key_columns)

        def read(columns: list[str]) -> sql.Statement:
            return sql.select_rows(
                layout.table, columns, changed_since=changed_since, changed_before=changed_before,
                change_columns=tracking, order_by=keys, optimize=sql.ALL_ROWS if self._optimize else None,
            )

        statement, listing = read(layout.select_names(spec.source_columns)), read(keys)
        sql.guard_select(statement.sql, [layout.table])
        sql.guard_select(listing.sql, [layout.table])
        return As400Extraction(self.settings, spec, [statement], layout=layout, key_listing=listing, clock=clock,
                               anchor=anchor)

    def _current_rows(self, spec: TableSpec, keys: list[RecordKey]) -> Iterator[pa.RecordBatch]:
        with self.extract_keys(spec, keys) as extraction:
            yield from extraction.batches()

    def unique_key_index(self, connection: pyodbc.Connection, spec: TableSpec, layout: FileLayout) -> str | None:
        """A primary key, unique constraint, unique index or unique DDS key over exactly the business key columns
        (any order), or None: then the file may hold one key in two records (QSYS2.SYSPARTITIONINDEXSTAT)."""
        wanted = sorted(name.upper() for name in layout.select_names(spec.source_key_columns))
        for schema, name, kind, keys, unique in self._run(connection, sql.table_indexes(layout.table), layout.table):
            if is_unique_index(kind, unique) and sorted(index_columns(keys)) == wanted:
                return f"{schema.strip()}.{name.strip()}"
        return None

    def journal_of(self, spec: TableSpec, connection: pyodbc.Connection) -> Journal | None:
        """The journal this file's changes are read from; None means change stamps: AS400_CHANGE_TRACKING=stamps,
        or no journal records the file, or its journal is not readable by this user (JOURNALED_OBJECTS shows
        only those)."""
        if self.settings.change_tracking == "stamps":
            return None
        table = self.table_of(spec)
        names = self._run(connection, sql.system_names(table), table)
        if not names:
            return None
        library, file = names[0][0].strip(), names[0][1].strip()
        rows = self._run(connection, sql.journaling(library, file), table)
        if not rows:
            return None
        journal_library, journal_name, images = rows[0]
        return Journal(journal_library.strip(), journal_name.strip(), (images or "*AFTER").strip(), library, file)

    def receiver_chain(self, connection: pyodbc.Connection, journal: Journal, table: sql.QualifiedTable
                       ) -> list[Receiver]:
        return [receiver_from_row(row)
                for row in self._run(connection, sql.journal_receivers(journal.library, journal.name), table)]

    def _journal_window(self, connections: list[arrow_odbc.Connection], statement: sql.Statement, *,
                        max_text_size: int) -> pa.Table:
        """One bounded window of journal entries, its parameters bound at the server (they carry names), on the
        extraction's one connection (opened with the first window)."""
        sql.guard_journal_read(statement.sql)
        if not connections:
            connections.append(bound_connection(self.settings, "reading the journal failed"))
        try:
            reader = connections[0].read_arrow_batches(
                query=statement.sql, parameters=list(statement.parameters),
                batch_size=min(self.settings.journal_window, 2_000), max_text_size=max_text_size,
                payload_text_encoding=self.settings.text_encoding)
            table = pa.Table.from_batches(list(reader), schema=reader.schema)
        except arrow_odbc.Error as exc:
            raise self.settings.connection_error("reading the journal failed", exc) from None
        names = [*sql.JOURNAL_COLUMNS, *sql.JOURNAL_HEX_COLUMNS]
        return table.rename_columns(names) if table.num_columns == len(names) else table

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
        chunks = [split[start : start + REPLAY_CHUNK] for start in range(0, len(split), REPLAY_CHUNK)]
        for chunk in chunks:  # every key is checked (NUL, arity) before any connection
            sql.guard_select(sql.select_keys(table, spec.source_columns, key_columns, chunk).sql, [table])
        layout = self.check_columns(spec)
        statements = [
            sql.select_keys(table, layout.select_names(spec.source_columns), layout.select_names(key_columns), chunk)
            for chunk in chunks
        ]
        for statement in statements:
            sql.guard_select(statement.sql, [table])
        yield As400Extraction(self.settings, spec, statements, layout=layout, chunks=chunks)

    def full_sync_reason(self, spec: TableSpec, since: Watermark | None) -> str | None:
        """Why the stored position cannot be continued: the journal lost it (a receiver deleted or freed, the
        chain broken, sequence numbers reset under it), or the file moved between journal and change stamps.
        A change stamp cannot go backwards as a whole: an unusable stamp watermark fails instead."""
        if since is None:
            return None
        table = self.table_of(spec)
        position = Position.from_watermark(spec, since)
        if position is None:
            self.changed_since(spec, since)  # a watermark that is neither is refused naming it, unconnected
        with self.settings.connect() as connection:
            journal = self.journal_of(spec, connection)
            if position is None:
                return (f"{table} is journaled to {journal} now: its changes are read from the journal, from a "
                        "full read on") if journal else None
            if journal is None:
                return (f"{table} is no longer read through journal {position.journal} (not journaled, journal not "
                        "readable, or AS400_CHANGE_TRACKING=stamps): change stamps take over from a full read on")
            if str(journal) != position.journal:
                return f"{table} is journaled to {journal} now, not {position.journal}"
            return position_problem(position, self.receiver_chain(connection, journal, table))

    def source_clock(self, table: sql.QualifiedTable) -> dt.datetime:
        """The IBM i's CURRENT TIMESTAMP (its local time, as the change stamps are)."""
        value = self._query(sql.source_clock(), table)[0][0]
        return value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value)[:26])

    def count_rows(self, spec: TableSpec) -> int:
        """Rows in the file, by `COUNT(*)`: a query over the file (not its statistics), which through SQL
        sees the first member only; `check_columns` refuses files with more than one member."""
        table = self.table_of(spec)
        return int(self._query(sql.count_rows(table), table)[0][0])

    def stamp_index(self, connection: pyodbc.Connection, spec: TableSpec, layout: FileLayout) -> str | None:
        """An index, keyed logical file or constraint whose leading keys are the change-stamp columns (the
        only way the sensor's newest-stamp query reads one row instead of sorting the file), or None."""
        assert spec.change_tracking is not None
        wanted = [name.upper() for name in layout.select_names(spec.change_tracking.columns)]
        for schema, name, kind, keys, _ in self._run(connection, sql.table_indexes(layout.table), layout.table):
            if index_columns(keys)[: len(wanted)] == wanted:
                return f"{schema.strip()}.{name.strip()} ({kind.strip()}: {keys.strip()})"
        return None

    def change_markers(self, specs: list[TableSpec], previous: Mapping[str, str] | None = None) -> dict[str, str]:
        """A cheap "did anything change" marker per table: for a journaled file the journal's last sequence,
        otherwise its newest plausible change stamp and its row count.

        Computed from scratch every tick (one catalog row or one indexed row per table), so the previous markers
        are not needed.

        One connection for all tables. The stamp is one row read through an index led by the stamp columns,
        checked first: without one every tick would sort the whole file, so the tick fails naming the index to
        create. Stamps later than tomorrow (sentinels such as 9991231) are skipped. The count is a COUNT(*)
        query; deletions move it.
        """
        markers: dict[str, str] = {}
        tomorrow, _ = to_cyymmdd_hhmmss(dt.datetime.now() + FUTURE_TOLERANCE)
        for spec in specs:  # every name is checked before any connection
            self.table_of(spec)
        with self.settings.connect() as connection:
            for spec in specs:
                layout = self.check_columns(spec, connection)
                journal = self.journal_of(spec, connection)
                if journal is not None:
                    # The attached receiver's last sequence: it moves with every change journaled (to any file
                    # of the journal), read from one catalog row (JOURNAL_RECEIVER_INFO).
                    end = end_of_chain(journal, self.receiver_chain(connection, journal, layout.table))
                    markers[spec.entity] = f"journal {end.receiver_library}/{end.receiver}:{end.sequence}"
                    continue
                parts = []
                statements = [sql.count_rows(layout.table)]
                if spec.change_tracking is not None:
                    if self.stamp_index(connection, spec, layout) is None:
                        raise PermanentSourceError(self._missing_index(spec, layout))
                    statements.insert(0, sql.latest_change(
                        layout.table, layout.select_names(spec.change_tracking.columns), tomorrow,
                        sql.FIRST_ROW if self._optimize else None,
                    ))
                for statement in statements:
                    rows = self._run(connection, statement, layout.table)
                    parts.append(".".join(str(int(v)) for v in rows[0]) if rows else "empty")
                markers[spec.entity] = "/".join(parts)
        return markers

    @staticmethod
    def _missing_index(spec: TableSpec, layout: FileLayout) -> str:
        columns = layout.select_names(spec.change_tracking.columns)  # type: ignore[union-attr]
        return (
            f"{layout.table} has no index led by {', '.join(columns)}: the change sensor's newest-stamp query would "
            "sort the whole file (or build a temporary index) on every tick (Db2 for i Ordering optimization). "
            f"Ask the DBA for CREATE INDEX {layout.table.library}.{layout.table.table[:6]}CHG ON {layout.table} "
            f"({', '.join(f'{name} DESC' for name in columns)}), or leave the sensor off and rely on the schedules"
        )

    def test_connection(self) -> str:
        """Opens a session and runs the probe; returns the server's answer as text."""
        with self.settings.connect() as connection:
            probe = sql.connection_probe()
            sql.guard_select(probe.sql, [])
            return str(connection.cursor().execute(probe.sql).fetchone()[0])

    def connection_report(self, specs: list[TableSpec]) -> list[str]:
        """What a DBA needs before the first sync: driver and server, isolation, text transfer, TLS, and per
        whitelisted file its members, CCSIDs, journal and whether the sensor's stamp query has an index."""
        lines: list[str] = []
        with self.settings.connect() as connection:
            probe = sql.connection_probe()
            sql.guard_select(probe.sql, [])
            connection.cursor().execute(probe.sql).fetchone()
            info = {name: connection.getinfo(getattr(pyodbc, name)) for name in (
                "SQL_DRIVER_NAME", "SQL_DRIVER_VER", "SQL_DBMS_NAME", "SQL_DBMS_VER", "SQL_DEFAULT_TXN_ISOLATION")}
            lines.append(f"driver {info['SQL_DRIVER_NAME']} {info['SQL_DRIVER_VER']}; "
                         f"server {info['SQL_DBMS_NAME']} {info['SQL_DBMS_VER']}")
            default = _ISOLATIONS.get(info["SQL_DEFAULT_TXN_ISOLATION"], info["SQL_DEFAULT_TXN_ISOLATION"])
            lines.append(f"isolation {self.settings.isolation} (driver default: {default})")
            lines.append(f"text read as {self.settings.text_encoding.name}; TLS {self._tls()}")
            for spec in specs:
                lines.append(self._file_report(connection, spec))
        return lines

    def _journal_report(self, connection: pyodbc.Connection, spec: TableSpec, journal: Journal,
                        table: sql.QualifiedTable) -> str:
        """The journal, its images and receivers, and what the sync can and cannot see through it."""
        chain = self.receiver_chain(connection, journal, table)
        online = [receiver for receiver in chain if receiver.status in READABLE_RECEIVERS]
        text = (f"journaled to {journal} with JOURNAL_IMAGES {journal.images}; changes and deletions read from the "
                f"journal; {len(online)} receiver(s) online"
                + (f", oldest {online[0]} (attached {online[0].attached_at})" if online else ""))
        if journal.images != "*BOTH":
            text += ("; WARNING: with *AFTER images a delete carries no record and a key change no old key, so "
                     "such changes reach the target only at the next full sync: CHGJRNOBJ ... ATR(*IMAGES) "
                     "IMAGES(*BOTH) fixes it")
        try:
            unique = self.unique_key_index(connection, spec, self.check_columns(spec, connection))
        except SchemaDriftError:
            return text
        if unique is None:
            text += "; no unique key over the business key: changed keys are read again from the file"
        return text

    def position_warning(self, spec: TableSpec, since: Watermark | None) -> str | None:
        """While there is still time: the receiver holding the stored journal position is among the
        AS400_JOURNAL_MARGIN oldest detached receivers, so a clean-up may delete it before the next sync."""
        position = Position.from_watermark(spec, since)
        if position is None:
            return None
        table = self.table_of(spec)
        with self.settings.connect() as connection:
            journal = self.journal_of(spec, connection)
            if journal is None:
                return None
            chain = self.receiver_chain(connection, journal, table)
        return position_problem(position, chain) or retention_warning(position, chain, self.settings.journal_margin)

    def _tls(self) -> str:
        if not self.settings.ssl:
            return "OFF (AS400_SSL=false): passwords and data cross the network in clear"
        if self.settings.profile == "ibmi":
            return ("on (SSL=1: the driver encrypts all traffic or does not connect; CWBCO1050 means the "
                    "system's certificate authority is not in the client's trust store)")
        return "on (SSLmode=require: the stand-in refuses to connect without TLS)"

    def _file_report(self, connection: pyodbc.Connection, spec: TableSpec) -> str:
        table = self.table_of(spec)
        columns = self.source_columns(table, connection)
        if not columns:
            return f"{spec.entity} {table}: NOT FOUND in QSYS2.SYSCOLUMNS2"
        by_ccsid: dict[str, list[str]] = {}
        for column in columns:
            if column.ccsid is not None:
                by_ccsid.setdefault(str(column.ccsid), []).append(column.name)
        ccsids = "; ".join(f"CCSID {ccsid}: {', '.join(names)}" for ccsid, names in sorted(by_ccsid.items()))
        stats = self._run(connection, sql.table_statistics(table), table)
        members = f"{stats[0][0]} member(s), {stats[0][1]} rows" if stats else "members unknown"
        names = self._run(connection, sql.system_names(table), table)
        journal = "not journaled (or its journal is not readable by this user)"
        system_name = "system name unknown"
        if names:
            library, file = names[0][0].strip(), names[0][1].strip()
            system_name = f"system name {library}/{file}"
            found = self.journal_of(spec, connection)
            if found is not None:
                journal = self._journal_report(connection, spec, found, table)
            elif self.settings.change_tracking == "stamps":
                journal = "changes read by change stamps (AS400_CHANGE_TRACKING=stamps)"
        report = f"{spec.entity} {table}: {system_name}; {members}; {ccsids or 'no character columns'}; {journal}"
        if spec.change_tracking is not None and "journaled to" not in journal:
            try:
                layout = self.check_columns(spec, connection)
            except SchemaDriftError as exc:
                return f"{report}; layout: {exc}"
            index = self.stamp_index(connection, spec, layout)
            report += f"; sensor stamp index: {index}" if index else f"; sensor: {self._missing_index(spec, layout)}"
        return report


def is_unique_index(kind: str | None, unique: str | None) -> bool:
    """A primary key or unique constraint, or an index or keyed file whose UNIQUE is '0' (unique keys; '1' is
    UNIQUE WHERE NOT NULL, the others allow duplicates: QSYS2.SYSPARTITIONINDEXSTAT, IBM i 7.4 rbafzcatsyspistat)."""
    return (kind or "").strip() in ("PRIMARY KEY", "UNIQUE") or (unique or "").strip() == "0"


def index_columns(keys: str | None) -> list[str]:
    """COLUMN_NAMES is "a comma separated list of the column names that define the index key"; an ordering word
    after a name, should one appear, is not part of it."""
    return [(key.split() or [""])[0].strip('"').upper() for key in (keys or "").split(",")]


_ISOLATIONS = {1: "read uncommitted", 2: "read committed", 4: "repeatable read", 8: "serializable"}
