"""The 4D source adapter: one licensed REST session per read, keyset pages turned into Arrow batches."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pyarrow as pa
import sqlalchemy as sa

from erp_pipelines.catalog.spec import TableSpec
from erp_pipelines.sources.base import (
    STRUCTURED_VALUES,
    InvalidWatermarkError,
    RecordKey,
    SchemaDriftError,
    TableNotAllowedError,
    Watermark,
    exact_keys,
    require_source_columns,
)
from erp_pipelines.sources.legacy_4d.client import Condition, Legacy4DClient, Legacy4DError, deferred_key

GLOBAL_STAMP = "__GlobalStamp"
REPLAY_CHUNK = 200
_WHOLE_NUMBER = re.compile(r"-?[0-9]{1,18}")


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
    ) -> None:
        self._client = client
        self._spec = spec
        self._since = since
        self._batch_rows = batch_rows
        self._keys = keys
        self._stamp: int | None = None

    @property
    def _key(self) -> str:
        return self._spec.source_key_columns[0]

    def batches(self) -> Iterator[pa.RecordBatch]:
        spec = self._spec
        tracked = spec.change_tracking is not None and self._keys is None
        if tracked:
            self._stamp = self._client.global_stamp()
        if self._keys is not None:
            yield from self._replay_batches()
            return
        if spec.distinct_values_of:
            values = [v for v in self._client.distinct_values(spec.source_table, spec.distinct_values_of)
                      if isinstance(v, str) and v.strip()]
            yield pa.RecordBatch.from_arrays([pa.array(values, pa.string())], names=[spec.distinct_values_of])
            return
        filters: list[Condition] = []
        if self._since is not None and tracked:
            filters.append((GLOBAL_STAMP, ">=", int(self._since["global_stamp"])))
        columns = spec.source_columns
        pending: list[dict[str, Any]] = []
        for page in self._client.iter_pages(spec.source_table, key=self._key, fields=columns, filters=filters):
            pending.extend(page)
            if len(pending) >= self._batch_rows:
                yield records_to_batch(pending, columns)
                pending = []
        if pending:
            yield records_to_batch(pending, columns)

    def _replay_batches(self) -> Iterator[pa.RecordBatch]:
        """Only the entities whose keys are quarantined (IN lists, bound as $params)."""
        keys = self._keys or []
        columns = self._spec.source_columns
        if self._spec.distinct_values_of:
            wanted = set(keys)
            values = self._client.distinct_values(self._spec.source_table, self._spec.distinct_values_of)
            yield pa.RecordBatch.from_arrays([pa.array([v for v in values if v in wanted], pa.string())],
                                             names=[self._spec.distinct_values_of])
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

    def deleted_keys(self) -> pa.RecordBatch | None:
        """Keys in `__DeletedRecords` stamped since the watermark (4D's data change tracking), except those
        that exist again: an entity deleted and then created anew under the same key is live, and its new
        version is read by this run or, if created after its page was read, by the next one."""
        if self._since is None or self._spec.change_tracking is None or self._keys is not None:
            return None
        deleted = self._client.deleted_records(self._spec.source_table, int(self._since["global_stamp"]))
        keys = list(dict.fromkeys(str(record["__PrimaryKey"]) for record in deleted))
        live = {
            str(record[self._key])
            for start in range(0, len(keys), REPLAY_CHUNK)
            for record in self._records_with_keys(keys[start : start + REPLAY_CHUNK], [self._key])
        }
        gone = [key for key in keys if key not in live]
        return pa.RecordBatch.from_arrays([pa.array(gone, pa.string())], names=[self._key])


class Legacy4DSource:
    """Reads the 4D ERP through its REST server; every read logs in once and logs out at the end."""

    system = "legacy_4d"

    def __init__(self, client_factory: Callable[[], Legacy4DClient], batch_rows: int = 5_000) -> None:
        self._client_factory = client_factory
        self.batch_rows = batch_rows

    @contextmanager
    def session(self) -> Iterator[Legacy4DClient]:
        """One REST session (one 4D client license), released on exit even after an error."""
        client = self._client_factory()
        client.connect()
        try:
            yield client
        finally:
            client.disconnect()

    def _check(self, spec: TableSpec) -> None:
        if spec.source_system != self.system:
            raise TableNotAllowedError(f"{spec.entity} is not a table of the 4D ERP")

    def check_attributes(self, client: Legacy4DClient, spec: TableSpec) -> None:
        """Schema drift: the dataclass's stored attributes must be exactly those the spec knows (relations
        and computed attributes are navigation, not data: their storage attributes are what is read)."""
        catalog = client.catalog()
        dataclass = next((dc for dc in catalog.get("dataClasses", []) if dc.get("name") == spec.source_table), None)
        if dataclass is None:
            raise SchemaDriftError(f"dataclass {spec.source_table} is not exposed by the 4D REST server")
        present = [attribute["name"] for attribute in dataclass.get("attributes", [])
                   if attribute.get("kind", "storage") == "storage"]
        require_source_columns(spec, present, f"4D {spec.source_table}", complete=True)

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

    @contextmanager
    def extract(self, spec: TableSpec, since: Watermark | None) -> Iterator[Legacy4DExtraction]:
        self._check(spec)
        since = self.checked_watermark(spec, since)
        with self.session() as client:
            self.check_attributes(client, spec)
            yield Legacy4DExtraction(client, spec, since, self.batch_rows)

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
            self.check_attributes(client, spec)
            yield Legacy4DExtraction(client, spec, None, self.batch_rows,
                                     keys=["" if key[0] is None else str(key[0]) for key in keys])

    def count_rows(self, spec: TableSpec) -> int:
        self._check(spec)
        with self.session() as client:
            if spec.distinct_values_of:
                values = client.distinct_values(spec.source_table, spec.distinct_values_of)
                return len([v for v in values if isinstance(v, str) and v.strip()])
            return client.count(spec.source_table)

    def change_markers(self, specs: list[TableSpec]) -> dict[str, str]:
        """Per table: the newest `__GlobalStamp` of its dataclass and of its `__DeletedRecords` entries.

        4D writes the current global stamp into every saved entity and every deletion record, so the pair
        moves on any insert, update or delete of that dataclass; two one-entity requests per dataclass.
        """
        markers: dict[str, str] = {}
        by_table: dict[str, str] = {}
        with self.session() as client:
            for spec in specs:
                self._check(spec)
                if spec.source_table not in by_table:
                    newest = client.query_table(spec.source_table, fields=[GLOBAL_STAMP], limit=1,
                                                order_by=f"{GLOBAL_STAMP} desc")
                    deleted = client.query_table("__DeletedRecords", [("__TableName", "===", spec.source_table)],
                                                 fields=["__Stamp"], limit=1, order_by="__Stamp desc")
                    by_table[spec.source_table] = (
                        f"{newest[0][GLOBAL_STAMP] if newest else 0}/{deleted[0]['__Stamp'] if deleted else 0}"
                    )
                markers[spec.entity] = by_table[spec.source_table]
        return markers

    def test_connection(self) -> str:
        with self.session() as client:
            names = [dc["name"] for dc in client.catalog().get("dataClasses", [])]
        return ", ".join(names)


__all__ = ["Legacy4DError", "Legacy4DSource", "records_to_batch"]
