"""The 4D source adapter: reads in the deployment's one 4D session, keyset pages turned into Arrow batches."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import pyarrow as pa
import sqlalchemy as sa

from erp_pipelines.core.source import (
    STRUCTURED_VALUES,
    ChangeRange,
    ChangeRangeError,
    InvalidWatermarkError,
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
from erp_pipelines.sources.legacy_4d.client import Legacy4DClient
from erp_pipelines.sources.legacy_4d.errors import Legacy4DError
from erp_pipelines.sources.legacy_4d.filters import Condition

GLOBAL_STAMP = "__GlobalStamp"
DELETED_RECORDS = "__DeletedRecords"
REPLAY_CHUNK = 200
_WHOLE_NUMBER = re.compile(r"-?[0-9]{1,18}")
# Stamps re-read below the watermark: a record saved inside a 4D transaction before the watermark was read and
# committed after its page was read carries a stamp below the next watermark (DOC
# https://developer.4d.com/docs/ORDA/global-stamp stamps at each save, nothing about transactions). The merge is
# idempotent, so re-reading costs only the rows saved meanwhile.
DEFAULT_OVERLAP_STAMPS = 1000
DATASTORE_MARKER = "__datastore_global_stamp"
"""Key of the change sensor's cursor that holds the datastore stamp seen last (not an entity)."""


DEFAULT_BATCH_ROWS = 10_000
"""Entities per validated and loaded batch (the memory bound of a 4D sync). Each page becomes Arrow as it
arrives, so the entities of a batch are not all held as dicts: 100,000 products peaked at 298 MB instead of
317-326 MB. Larger batches validate with less CPU (pandera's error report costs per batch: 4.64 s user at 10,000
rows, 3.91 s at 50,000) but took as long, the read being bound by the page fetches, and held more (356 MB at
50,000); measured 2026-12-03."""


LARGEST_STAMP = 2**63 - 1
"""`__GlobalStamp` is an Integer 64 field (DOC https://developer.4d.com/docs/ORDA/global-stamp)."""


def stamp_bound(bound: str, text: str) -> int:
    """One end of a backfill range as a global stamp; refused naming `bound` when it is none. A date cannot stand
    for one: the stamp counts saves, it is no time, and the synced dataclasses carry no modification date (their
    dates are business dates: created, ordered, invoiced), so nothing says which stamps a day's saves took."""
    value = text.strip()
    if not (value.isascii() and value.isdigit()) or int(value) > LARGEST_STAMP:
        raise ChangeRangeError(bound, f"{bound} {text!r} is not a 4D global stamp: 4D marks changes with "
                                      f"{GLOBAL_STAMP}, a whole number from 0 to {LARGEST_STAMP} that counts "
                                      "saves, not a date; give a stamp, e.g. the global_stamp of an earlier run's "
                                      "watermark_before (sync_run)")
    return int(value)


def stamp_range(changes: ChangeRange) -> tuple[int, int | None]:
    """The global stamps a backfill reads from (included) and up to (excluded)."""
    return range_bounds(changes, stamp_bound)


class StampWentBackwardsError(InvalidWatermarkError):
    """4D's global stamp is below the stored watermark: restored data file, ``setGlobalStamp()``, another data
    file. Stamps since the watermark no longer mean "changed since": only a full sync is right."""


def deferred_key(value: object) -> object:
    """The key of an N→1 relation value (`{"__deferred": {"uri": …, "__KEY": "3"}}`); other values as is."""
    if isinstance(value, dict) and isinstance(value.get("__deferred"), dict):
        return value["__deferred"].get("__KEY")
    return value


def records_to_batch(records: list[dict[str, Any]], columns: list[str]) -> pa.RecordBatch:
    """JSON entities → an Arrow batch of the wanted attributes.

    A column whose values do not share one JSON type (bad data: a number as text, an object where a
    string belongs, an integer beyond 64 bits, text with an unpaired surrogate) is kept as text, so the
    decoders can name the offending record instead of failing the batch. Objects and arrays (other than
    relation stubs) become their JSON text and are listed in `STRUCTURED_VALUES` for the validator.
    """
    arrays = []
    structured: list[list[str]] = [[] for _ in records]
    for name in columns:
        values = [record.get(name) for record in records]
        if any(type(value) is dict or type(value) is list for value in values):
            values = [deferred_key(value) for value in values]
            for row, value in enumerate(values):
                if isinstance(value, dict | list):
                    structured[row].append(name)
        try:
            array = pa.array(values)
            if pa.types.is_struct(array.type) or pa.types.is_list(array.type):
                raise pa.ArrowInvalid("nested value")
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, UnicodeEncodeError):
            array = _as_text(values)
        arrays.append(array)
    if any(structured):
        arrays.append(pa.array([names or None for names in structured], pa.list_(pa.string())))
        columns = [*columns, STRUCTURED_VALUES]
    return pa.RecordBatch.from_arrays(arrays, names=columns)


def coalesce_batches(batches: Iterable[pa.RecordBatch], rows: int) -> Iterator[pa.RecordBatch]:
    """Consecutive page batches joined into batches of about `rows` rows. Pages whose columns took different
    types (bad data made one text, `records_to_batch`) are never joined: each keeps its own conversion. A
    column with no value in a page (Arrow's null type) takes the type of the others."""
    pending: list[pa.RecordBatch] = []
    types: list[pa.DataType] = []
    count = 0
    for batch in batches:
        merged = _joined_types(types, pending[0].schema, batch.schema) if pending else list(batch.schema.types)
        if pending and (merged is None or count >= rows):
            yield _joined(pending, types)
            pending, count, merged = [], 0, list(batch.schema.types)
        pending.append(batch)
        types = merged
        count += batch.num_rows
    if pending:
        yield _joined(pending, types)


def _joined_types(types: list[pa.DataType], pending: pa.Schema, schema: pa.Schema) -> list[pa.DataType] | None:
    """The column types a batch of `schema` shares with the pending ones (`types`), or None when it does not."""
    if schema.names != pending.names:
        return None
    joined = []
    for held, arriving in zip(types, schema.types, strict=True):
        if pa.types.is_null(held) or held == arriving:
            joined.append(arriving)
        elif pa.types.is_null(arriving):
            joined.append(held)
        else:
            return None
    return joined


def _joined(batches: list[pa.RecordBatch], types: list[pa.DataType]) -> pa.RecordBatch:
    if len(batches) == 1:
        return batches[0]
    names = batches[0].schema.names
    return pa.concat_batches([
        pa.RecordBatch.from_arrays([c if c.type == t else c.cast(t) for c, t in zip(b.columns, types, strict=True)],
                                   names=names) for b in batches])


def _as_text(values: list[Any]) -> pa.Array:
    """Values of mixed JSON types as text; an unpaired surrogate (valid JSON, invalid Unicode) becomes U+FFFD,
    which the text rules then reject."""
    texts = [None if value is None else json.dumps(value, ensure_ascii=False) if isinstance(value, dict | list)
             else str(value) for value in values]
    try:
        return pa.array(texts, pa.string())
    except UnicodeEncodeError:
        return pa.array([None if text is None else text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
                         for text in texts], pa.string())


class Legacy4DExtraction:
    """One read of one dataclass; the watermark is the datastore stamp taken before the first page."""

    def __init__(
        self,
        client: Legacy4DClient,
        spec: TableSpec,
        since: Watermark | None,
        batch_rows: int,
        keys: list[str] | None = None,
        *,
        primary_key: str | None = None,
        overlap_stamps: int = DEFAULT_OVERLAP_STAMPS,
        stamps: tuple[int, int | None] | None = None,
    ) -> None:
        self._client = client
        self._spec = spec
        self._since = since
        self._batch_rows = batch_rows
        self._keys = keys
        self._primary_key = primary_key or spec.source_key_columns[0]
        self._overlap = overlap_stamps
        self._stamps = stamps
        self._stamp: int | None = None

    @property
    def _key(self) -> str:
        return self._spec.source_key_columns[0]

    def _from_stamp(self) -> int:
        return max(0, int((self._since or {})["global_stamp"]) - self._overlap)

    def batches(self) -> Iterator[pa.RecordBatch]:
        spec = self._spec
        if self._keys is not None:
            yield from self._replay_batches()
            return
        if spec.distinct_values_of:
            yield self._derived_batch(self._derived_values())
            return
        filters: list[Condition] = []
        if self._stamps is not None:
            # A backfill's range: `>=` and `<` on __GlobalStamp, two comparisons AND-ed with `:n` placeholders
            # (DOC https://developer.4d.com/docs/20/REST/filter: "{attribute} {comparator} {placeholder} {AND/OR/
            # EXCEPT} ...", comparators of dataClass.query()), as 4D's own sync bounds it (4d-rest.md §6,
            # `__GlobalStamp >= S AND __GlobalStamp <= E`); no watermark is taken.
            since, until = self._stamps
            filters.append((GLOBAL_STAMP, ">=", since))
            if until is not None:
                filters.append((GLOBAL_STAMP, "<", until))
        elif spec.change_tracking is not None:
            self._stamp = self._client.global_stamp(spec.source_table, self._key)
            if self._since is not None:
                check_stamp_not_behind(spec, self._since, self._stamp)
                filters.append((GLOBAL_STAMP, ">=", self._from_stamp()))
        columns = spec.source_columns
        pages = self._client.iter_pages(spec.source_table, key=self._key, fields=columns, filters=filters)
        yield from coalesce_batches((records_to_batch(page, columns) for page in pages), self._batch_rows)

    def _derived_values(self) -> list[object]:
        """Every value of the referenced attribute, one per decoded value, from a complete keyset read.

        Not ``$distinct``: 4D pages it by entities and compares without regard to case and accents (DOC
        docs/REST/$distinct.md, EntitySelectionClass.distinct()), so "Tools" would hide "tools" and paging would
        miss values. The values are decoded here exactly as the referring column decodes them (the spec's key
        decoder), so each application row matches what its referrers hold, byte for byte: exact, case- and
        accent-sensitive. A value that decodes to nothing (blank) names no category.
        """
        attribute = self._spec.distinct_values_of or ""
        raw: list[object] = []
        for page in self._client.iter_pages(self._spec.source_table, key=self._primary_key, fields=[attribute]):
            raw.extend(record.get(attribute) for record in page)
        if not raw:
            return []
        column = records_to_batch([{attribute: value} for value in raw], [attribute]).column(0)
        decoded = self._spec.column(self._spec.business_key[0]).decoder([column])
        invalid = decoded.invalid_rows()
        chosen: dict[object, object] = {}
        for row, value in enumerate(decoded.values.to_pylist()):
            if invalid[row]:
                chosen.setdefault(("invalid", json.dumps(raw[row], default=str)), raw[row])
            elif value is not None:
                chosen.setdefault(value, raw[row])
        return list(chosen.values())

    def _derived_batch(self, values: list[object]) -> pa.RecordBatch:
        name = self._spec.distinct_values_of or ""
        return records_to_batch([{name: value} for value in values], [name]) if values else \
            pa.RecordBatch.from_arrays([pa.array([], pa.string())], names=[name])

    def _replay_batches(self) -> Iterator[pa.RecordBatch]:
        """Only the entities whose keys are quarantined (IN lists, bound as $params)."""
        keys = self._keys or []
        columns = self._spec.source_columns
        if self._spec.distinct_values_of:
            wanted = set(keys)
            yield self._derived_batch([value for value in self._derived_values() if str(value) in wanted])
            return
        for start in range(0, len(keys), REPLAY_CHUNK):
            records = self._records_with_keys(keys[start : start + REPLAY_CHUNK], columns)
            if records:
                yield records_to_batch(records, columns)

    def _records_with_keys(self, keys: list[str], columns: list[str]) -> list[dict[str, Any]]:
        """The entities (still) present among these keys, given as text (quarantine, `__DeletedRecords`).

        A key that is not a whole number cannot exist under a numeric primary key: it is not asked for
        (4D would answer the mixed list with an error), so replay treats it as gone.
        """
        numeric = isinstance(self._spec.column(self._spec.business_key[0]).sql_type, sa.Integer)
        typed = [int(key) if key.lstrip("-").isdigit() else key for key in keys]
        if numeric:
            typed = [key for key in typed if isinstance(key, int)]
        if not typed:
            return []
        return [
            record
            for page in self._client.iter_pages(
                self._spec.source_table, key=self._key, fields=columns, filters=[(self._key, "IN", typed)]
            )
            for record in page
        ]

    def watermark(self) -> Watermark | None:
        return {"global_stamp": self._stamp} if self._stamp is not None else None

    def notes(self) -> dict[str, object]:
        return {}

    def changes(self) -> list[SourceChange]:
        """Reading the table itself tells no one's changes (the journal does: JournalExtraction)."""
        return []

    def deleted_keys(self) -> pa.RecordBatch | None:
        """Keys in `__DeletedRecords` stamped since the watermark (less the overlap), except those that exist
        again: an entity deleted and then created anew under the same key is live, and its new version is read
        by this run or, if created after its page was read, by the next one."""
        if self._since is None or self._spec.change_tracking is None or self._keys is not None:
            return None
        try:
            deleted = self._client.deleted_records(self._spec.source_table, self._from_stamp())
        except Legacy4DError as exc:
            if exc.status != 404:
                raise
            raise SchemaDriftError(
                f"{self._spec.entity}: 4D's {DELETED_RECORDS} table is not exposed to REST, so deletions cannot be "
                "read (data change tracking: DOC https://developer.4d.com/docs/ORDA/global-stamp); expose it, or "
                "run full syncs, which soft-delete what disappeared") from None
        keys = list(dict.fromkeys(str(record["__PrimaryKey"]) for record in deleted))
        live = {
            str(record[self._key])
            for start in range(0, len(keys), REPLAY_CHUNK)
            for record in self._records_with_keys(keys[start : start + REPLAY_CHUNK], [self._key])
        }
        gone = [key for key in keys if key not in live]
        return pa.RecordBatch.from_arrays([pa.array(gone, pa.string())], names=[self._key])


def check_stamp_not_behind(spec: TableSpec, since: Watermark, stamp: int) -> None:
    """Refuse an incremental read from a watermark the datastore's stamp is below (see StampWentBackwardsError)."""
    reason = stamp_behind_reason(spec, since, stamp)
    if reason:
        raise StampWentBackwardsError(reason)


def stamp_behind_reason(spec: TableSpec, since: Watermark, stamp: int) -> str | None:
    stored = int(since["global_stamp"])
    if stamp >= stored:
        return None
    return (f"{spec.entity}: 4D's global stamp is {stamp}, below the stored watermark {stored}: the data file was "
            "restored or replaced, or setGlobalStamp() moved it back, so stamps no longer tell what changed since "
            "the last sync; a full sync re-reads the table")


class Legacy4DSource:
    """Reads the 4D ERP through its REST server, in the deployment's one session (see ``session.py``)."""

    system = "legacy_4d"

    def __init__(
        self, client_factory: Callable[[], Legacy4DClient], batch_rows: int = DEFAULT_BATCH_ROWS,
        overlap_stamps: int = DEFAULT_OVERLAP_STAMPS,
    ) -> None:
        self._client_factory = client_factory
        self.batch_rows = batch_rows
        self.overlap_stamps = overlap_stamps
        self.retry_refused_login = False  # set by an operator's explicit check (test-connection)

    @contextmanager
    def session(self) -> Iterator[Legacy4DClient]:
        """A client on the deployment's session; its HTTP connections are closed on exit, the session is not
        (it holds the license this deployment keeps, and the next caller reuses it)."""
        client = self._client_factory()
        client.retry_refused = client.retry_refused or self.retry_refused_login
        try:
            client.connect()
            yield client
        finally:
            client.close()

    def _check(self, spec: TableSpec) -> None:
        if spec.source_system != self.system:
            raise TableNotAllowedError(f"{spec.entity} is not a table of the 4D ERP")

    def check_attributes(self, client: Legacy4DClient, spec: TableSpec) -> str:
        """Schema drift: the dataclass's stored attributes must be exactly those the spec knows (relations
        and computed attributes are navigation, not data: their storage attributes are what is read).
        Returns the dataclass's primary key attribute (from ``key`` of ``$catalog/{dataClass}``)."""
        dataclass = self._dataclass(client, spec.source_table)
        present = [attribute["name"] for attribute in dataclass.get("attributes", [])
                   if attribute.get("kind", "storage") == "storage"]
        require_source_columns(spec, present, f"4D {spec.source_table}", complete=True)
        keys = [key.get("name") for key in dataclass.get("key", []) if isinstance(key, dict)]
        return str(keys[0]) if keys else spec.source_key_columns[0]

    def describe(self, dataclass: str) -> dict:
        """`$catalog/{dataClass}` of one dataclass (its attributes, key and relations), for `erp-sync scaffold`."""
        with self.session() as client:
            return self._dataclass(client, dataclass)

    @staticmethod
    def _dataclass(client: Legacy4DClient, name: str) -> dict:
        try:
            return client.dataclass(name)
        except ValueError:
            raise SchemaDriftError(f"dataclass {name!r} is not exposed by the 4D REST server (not a 4D name)") from None
        except Legacy4DError as exc:
            if exc.status == 404:
                raise SchemaDriftError(f"dataclass {name} is not exposed by the 4D REST server") from None
            raise

    @staticmethod
    def checked_watermark(spec: TableSpec, since: Watermark | None) -> Watermark | None:
        """The stored watermark with an integer stamp; refused, before any request, when it holds none."""
        if since is None or spec.change_tracking is None:
            return since
        stamp = since.get("global_stamp") if isinstance(since, dict) else None
        if isinstance(stamp, str) and stamp.isascii() and stamp.isdigit():
            stamp = int(stamp)
        if isinstance(stamp, bool) or not isinstance(stamp, int) or stamp < 0:
            raise InvalidWatermarkError(
                f"{spec.entity}: the stored watermark {since!r} (sync_watermark) holds no 4D global stamp; "
                "run a full sync to replace it"
            )
        return {**since, "global_stamp": stamp}

    def full_sync_reason(self, spec: TableSpec, since: Watermark | None) -> str | None:
        """Why an incremental run of ``spec`` must be a full one instead (the engine asks before it starts):
        the datastore's stamp went below the stored watermark. One one-entity request."""
        self._check(spec)
        since = self.checked_watermark(spec, since)
        if since is None or spec.change_tracking is None:
            return None
        with self.session() as client:
            stamp = client.global_stamp(spec.source_table, spec.source_key_columns[0])
        return stamp_behind_reason(spec, since, stamp)

    @contextmanager
    def extract(self, spec: TableSpec, since: Watermark | None) -> Iterator[Legacy4DExtraction]:
        self._check(spec)
        since = self.checked_watermark(spec, since)
        with self.session() as client:
            primary_key = self.check_attributes(client, spec)
            yield Legacy4DExtraction(client, spec, since, self.batch_rows, primary_key=primary_key,
                                     overlap_stamps=self.overlap_stamps)

    def check_range(self, spec: TableSpec, changes: ChangeRange) -> None:
        """A backfill range must be two global stamps, the second above the first (`stamp_range`)."""
        self._check(spec)
        stamp_range(changes)

    @contextmanager
    def extract_range(self, spec: TableSpec, changes: ChangeRange) -> Iterator[Legacy4DExtraction]:
        """The entities whose `__GlobalStamp` lies in the range; no watermark, no `__DeletedRecords`."""
        self.check_range(spec, changes)
        with self.session() as client:
            primary_key = self.check_attributes(client, spec)
            yield Legacy4DExtraction(client, spec, None, self.batch_rows, primary_key=primary_key,
                                     stamps=stamp_range(changes))

    def record_keys(self, spec: TableSpec, raw: pa.RecordBatch) -> list[RecordKey]:
        """The key attribute's typed value: a numeric primary key stays a number even in a batch whose key
        column arrived as text (one entity with a non-numeric key turns the column to text)."""
        keys = exact_keys(raw, spec.source_key_columns, trailing_blanks_significant=True)
        if not isinstance(spec.column(spec.business_key[0]).sql_type, sa.Integer):
            return keys
        return [tuple(int(part) if isinstance(part, str) and _WHOLE_NUMBER.fullmatch(part) else part
                      for part in key) for key in keys]

    @contextmanager
    def extract_keys(self, spec: TableSpec, keys: list[RecordKey]) -> Iterator[Legacy4DExtraction]:
        """Only the entities with these quarantine keys, for a replay."""
        self._check(spec)
        with self.session() as client:
            primary_key = self.check_attributes(client, spec)
            yield Legacy4DExtraction(client, spec, None, self.batch_rows, primary_key=primary_key,
                                     keys=["" if key[0] is None else str(key[0]) for key in keys])

    def position_warning(self, spec: TableSpec, since: Watermark | None) -> str | None:
        """A stamp never expires: 4D keeps __GlobalStamp and __DeletedRecords until the data file is replaced,
        which `full_sync_reason` detects."""
        return None

    def count_rows(self, spec: TableSpec) -> int:
        self._check(spec)
        with self.session() as client:
            if spec.distinct_values_of:
                primary_key = self.check_attributes(client, spec)
                return len(Legacy4DExtraction(client, spec, None, self.batch_rows,
                                              primary_key=primary_key)._derived_values())
            return client.count(spec.source_table)

    def change_markers(self, specs: list[TableSpec], previous: Mapping[str, str] | None = None) -> dict[str, str]:
        """Per entity, the datastore stamp at which its dataclass was last seen changing; one request per tick.

        4D writes the current global stamp into every saved entity and every ``__DeletedRecords`` entry, then
        increments it (DOC https://developer.4d.com/docs/ORDA/global-stamp), so one cheap request (the top-level
        stamp of a one-entity page) tells whether anything changed since the last tick. Only when it moved:
        one request per tracked dataclass for its saves (``__GlobalStamp >= last``) and, if anything was
        deleted at all, one per dataclass for its deletions. A stamp that went backwards marks every entity.
        """
        previous = previous or {}
        for spec in specs:
            self._check(spec)
        tracked = [spec for spec in specs if spec.change_tracking is not None]
        probe = (tracked or specs)[0]
        with self.session() as client:
            stamp = client.global_stamp(probe.source_table, probe.source_key_columns[0])
            last_text = previous.get(DATASTORE_MARKER)
            last = int(last_text) if last_text and last_text.isdigit() else None
            markers = {spec.entity: previous.get(spec.entity, str(stamp)) for spec in specs}
            if last is None or stamp < last:
                markers = {spec.entity: str(stamp) if last is None else f"reset@{stamp}" for spec in specs}
            elif stamp > last:
                changed = self._tables_changed_since(client, tracked, last)
                markers.update({spec.entity: str(stamp) for spec in specs if spec.source_table in changed})
        markers[DATASTORE_MARKER] = str(stamp)
        return markers

    @staticmethod
    def _tables_changed_since(client: Legacy4DClient, specs: list[TableSpec], stamp: int) -> set[str]:
        tables = {spec.source_table: spec.source_key_columns[0] for spec in specs}
        changed = {table for table, key in tables.items()
                   if client.query_table(table, [(GLOBAL_STAMP, ">=", stamp)], fields=[key], limit=1)}
        if client.query_table(DELETED_RECORDS, [("__Stamp", ">=", stamp)], fields=["__Stamp"], limit=1):
            changed |= {table for table in tables if table not in changed and client.query_table(
                DELETED_RECORDS, [("__TableName", "===", table), ("__Stamp", ">=", stamp)], fields=["__Stamp"],
                limit=1)}
        return changed

    def test_connection(self, specs: list[TableSpec] | None = None) -> str:
        """What an operator needs to know before the first sync: the login mode works, the dataclasses, data
        change tracking ready (`__GlobalStamp` exposed on each tracked dataclass, `__DeletedRecords` exposed,
        a stamp above 0), and the licenses in use as far as ``$info`` may tell. Raises on any problem."""
        specs = specs or []
        with self.session() as client:
            names = [dc.get("name") for dc in client.catalog().get("dataClasses", [])]
            tracked = [spec for spec in specs if spec.change_tracking is not None]
            probe = tracked[0] if tracked else None
            stamp = client.global_stamp(probe.source_table, probe.source_key_columns[0]) if probe else None
            problems = self._tracking_problems(client, tracked, names)
            licenses = self._licenses_in_use(client)
        if problems:
            raise SchemaDriftError("4D data change tracking is not ready: " + "; ".join(problems))
        mode = ("force login (authentify)" if client.auth_mode == "authentify" else
                "default mode, directory login" if client.username else "default mode, open access")
        tracking = f"change tracking ready (global stamp {stamp})" if stamp is not None else "no tracked table"
        return f"{mode}; {tracking}; {licenses}; dataclasses: {', '.join(str(n) for n in names)}"

    def _tracking_problems(self, client: Legacy4DClient, specs: list[TableSpec], names: list[object]) -> list[str]:
        problems = []
        if specs and DELETED_RECORDS not in names:
            problems.append(f"{DELETED_RECORDS} is not exposed (deletions cannot be read)")
        elif specs:
            attributes = {a.get("name") for a in self._dataclass(client, DELETED_RECORDS).get("attributes", [])}
            missing = sorted({"__PrimaryKey", "__Stamp", "__TableName"} - attributes)
            if missing:
                problems.append(f"{DELETED_RECORDS} lacks {', '.join(missing)}")
        for table in dict.fromkeys(spec.source_table for spec in specs):
            if table not in names:
                problems.append(f"dataclass {table} is not exposed")
                continue
            stamp = next((a for a in self._dataclass(client, table).get("attributes", [])
                          if a.get("name") == GLOBAL_STAMP), None)
            if stamp is None:
                problems.append(f"{table} has no exposed {GLOBAL_STAMP} attribute")
            elif stamp.get("type") != "long64":
                problems.append(f"{table}.{GLOBAL_STAMP} is {stamp.get('type')}, not Integer 64 bits (long64)")
        return problems

    @staticmethod
    def _licenses_in_use(client: Legacy4DClient) -> str:
        try:
            sessions = client.info().get("sessionInfo")
        except Legacy4DError as exc:
            return f"licenses in use: not readable ($info answered HTTP {exc.status}; it may need an Admin login)"
        if not isinstance(sessions, list):
            return "licenses in use: not reported by $info"
        return f"REST sessions open on the server: {len(sessions)} (this deployment keeps one)"


__all__ = ["Legacy4DSource", "StampWentBackwardsError", "deferred_key", "records_to_batch"]
