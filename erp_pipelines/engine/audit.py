"""The audit trail: one `sync_run` row per table per run, `sync_error` per rejected record, watermarks."""

from __future__ import annotations

import datetime as dt
import decimal
import itertools
import json
import re
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from psycopg2.extras import execute_values
from sqlalchemy.dialects import postgresql

from erp_pipelines.app_db.tables import source_change, sync_error, sync_run, sync_watermark
from erp_pipelines.core.decoders import python_value
from erp_pipelines.core.source import RecordKey, SourceChange, Watermark
from erp_pipelines.core.spec import TableSpec
from erp_pipelines.engine.postgres import copy_csv

_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
ERROR_COLUMNS = ("sync_run_id", "source_system", "entity", "source_key", "rules", "error_message", "raw_record")


def raw_records(raw: pa.RecordBatch, rows: Sequence[int]) -> list[dict[str, Any]]:
    """The raw source records at `rows`, JSON-safe (converted column-wise, not value by value)."""
    taken = raw.take(pa.array(rows, pa.int64()))
    return [
        {name: python_value(value) for name, value in record.items()}
        for record in taken.to_pylist()
    ]


def canonical(value: Any) -> Any:
    """A raw value as its text, so one record compares equal however a batch typed its columns.

    A 4D batch with one text value in a boolean column carries that column as text (`True`), another batch
    as booleans (`true`); a number arrives as a float in one batch, a decimal in the next and as text in a
    batch where another entity's value was no number (`1E+15`, `1000000000000000.0`): all are the same source
    record. Numbers are compared by value, as plain decimal text. Stored JSON and fresh records go through here.
    """
    if value is None:
        return None
    if isinstance(value, dict):
        return {str(k): canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [canonical(v) for v in value]
    if isinstance(value, bool):
        return str(value)
    text = str(value)
    if isinstance(value, int | float | decimal.Decimal) or _NUMBER.fullmatch(text):
        number = decimal.Decimal(text)
        if number.is_finite():
            return format(number.normalize(), "f")
    return text


_RECORD_ENCODER = json.JSONEncoder(sort_keys=True, ensure_ascii=False)
_KEY_ENCODER = json.JSONEncoder(ensure_ascii=False, default=str)
"""One encoder each, made once: `json.dumps` with any option builds a new encoder per call, which was half
the cost of a key's text (1M keys: 2.7 s with `json.dumps`, 1.4 s through one encoder)."""


def canonical_record(record: dict[str, Any]) -> str:
    return _RECORD_ENCODER.encode(canonical(record))


def key_json(key: RecordKey) -> str:
    """The stored form of an exact key: a JSON array, never a joined string."""
    return _KEY_ENCODER.encode(list(key))


_NEEDS_ESCAPE = re.compile(r'[\x00-\x1f"\\\ud800-\udfff]')


def keys_json(keys: Sequence[RecordKey]) -> list[str]:
    """`key_json` of many keys, the same text: keys of text alone that JSON would not escape are joined
    directly (1M two-part keys: 1.4 s through the encoder, 0.3 s joined; reconciliation does this per run)."""
    parts = list(itertools.chain.from_iterable(keys))
    if set(map(type, parts)) <= {str} and not _NEEDS_ESCAPE.search("".join(parts)):
        return ['["' + '", "'.join(key) + '"]' for key in keys]
    return [key_json(key) for key in keys]


def shown_key(key: RecordKey) -> str:
    """A record's key for people: each part quoted, so blanks and separators stay visible."""
    return ", ".join(repr(part) for part in key)


class Audit:
    """Reads and writes the audit tables on the sync's own connection (same transactions as the data)."""

    def __init__(self, connection: sa.Connection, spec: TableSpec) -> None:
        self.connection = connection
        self.spec = spec

    def load_watermark(self) -> Watermark | None:
        """The stored watermark, unless it was saved by a run into another target table (ERP_TARGET switched
        between the project's and the application's table): that table is behind, so the run reads in full."""
        row = self.connection.execute(
            sa.select(sync_watermark.c.value, sync_run.c.target_table)
            .outerjoin(sync_run, sync_run.c.id == sync_watermark.c.sync_run_id)
            .where(sync_watermark.c.entity == self.spec.entity)
        ).one_or_none()
        if row is None or (row.target_table is not None and row.target_table != self.spec.target_table):
            return None
        return row.value

    def lock_entity(self) -> None:
        """One sync per entity at a time, across processes: a session advisory lock, released by
        `unlock_entity` or by PostgreSQL when the holder's session ends (even if it was killed)."""
        self.connection.execute(sa.select(sa.func.pg_advisory_lock(sa.func.hashtext(f"erp_pipelines:{self.spec.entity}"))))
        self.connection.commit()

    def unlock_entity(self) -> None:
        self.connection.execute(sa.select(sa.func.pg_advisory_unlock(sa.func.hashtext(f"erp_pipelines:{self.spec.entity}"))))
        self.connection.commit()

    def close_abandoned_runs(self) -> int:
        """RUNNING rows left by a process that died: holding the entity's lock proves nobody runs them."""
        closed = self.connection.execute(
            sa.update(sync_run)
            .where(sync_run.c.entity == self.spec.entity, sync_run.c.status == "RUNNING")
            .values(status="FAILED", finished_at=sa.func.now(),
                    error_message="abandoned: the sync process ended without finishing (killed or crashed); "
                                  "a run is one transaction, so nothing of it was applied")
        ).rowcount
        self.connection.commit()
        return closed

    def start(self, mode: str, dagster_run_id: str | None, watermark: Watermark | None) -> int:
        run_id = self.connection.execute(
            sa.insert(sync_run)
            .values(
                source_system=self.spec.source_system,
                entity=self.spec.entity,
                source_table=self.spec.source_table,
                target_table=self.spec.target_table,
                mode=mode,
                status="RUNNING",
                dagster_run_id=dagster_run_id,
                watermark_before=watermark,
            )
            .returning(sync_run.c.id)
        ).scalar_one()
        self.connection.commit()
        return int(run_id)

    def record_errors(
        self, run_id: int, keys: Sequence[RecordKey], records: Sequence[dict[str, Any]],
        rules: Sequence[dict[str, str]],
    ) -> int:
        """Quarantines rejected records with every failed rule, the exact key and the raw record.

        A record already held open in the quarantine under the same key with the same canonical values
        (re-read through the overlap window, or by a full sync) is not stored twice. Returns how many were new.
        """
        if not keys:
            return 0
        stored_keys = keys_json(keys)
        known = {
            (key_json(key), canonical_record(record))
            for key, record in self.connection.exec_driver_sql(
                "select source_key, raw_record from sync_error where entity = %(entity)s and resolved_at is null "
                "and source_key = any(%(keys)s::jsonb[])",
                {"entity": self.spec.entity, "keys": sorted(set(stored_keys))},
            )
        }
        new = []
        for key, record, failed in zip(stored_keys, records, rules, strict=True):
            fingerprint = (key, canonical_record(record))
            if fingerprint in known:
                continue
            known.add(fingerprint)
            new.append((run_id, self.spec.source_system, self.spec.entity, key, json.dumps(sorted(failed)),
                        "; ".join(failed.values()), json.dumps(record, sort_keys=True, default=str)))
        # COPY, not one INSERT per record: a run may quarantine a whole table (a parent not loaded).
        copy_csv(self.connection, "sync_error", ERROR_COLUMNS, new)
        return len(new)

    def record_changes(self, run_id: int, changes: list[SourceChange]) -> None:
        """Keeps, per record, the last source change this run saw (who, job, program, when), in the run's
        transaction; `erp-sync errors` shows it next to a quarantined record.

        One multi-row upsert per 1,000 records (psycopg2's `execute_values`), not one statement per record:
        an incremental run of 10,000 journal entries spent 1.1 s of its 6 s here. The last change of a key
        wins, as it did statement by statement (ON CONFLICT cannot touch one row twice in one statement)."""
        if not changes:
            return
        last = {key_json(change.key): change for change in changes}
        rows = [(self.spec.entity, key, change.changed_at, change.user, change.job, change.program,
                 change.position, run_id) for key, change in last.items()]
        updated = ("changed_at", "changed_by", "job", "program", "position", "sync_run_id")
        cursor = self.connection.connection.driver_connection.cursor()
        try:
            execute_values(
                cursor,
                f"insert into {source_change.name} (entity, source_key, {', '.join(updated)}) values %s "
                "on conflict (entity, source_key) do update set "
                + ", ".join(f"{name} = excluded.{name}" for name in updated),
                rows, template="(%s, %s::jsonb, %s, %s, %s, %s, %s, %s)", page_size=1000,
            )
        finally:
            cursor.close()

    def has_open_errors(self) -> bool:
        return self.connection.execute(
            sa.select(sa.literal(1))
            .where(sync_error.c.entity == self.spec.entity, sync_error.c.resolved_at.is_(None))
            .limit(1)
        ).first() is not None

    def open_error_keys(self) -> list[RecordKey]:
        """Distinct exact keys of this entity's records still held in quarantine."""
        return [
            tuple(key)
            for key in self.connection.execute(
                sa.select(sync_error.c.source_key)
                .where(sync_error.c.entity == self.spec.entity, sync_error.c.resolved_at.is_(None))
                .distinct()
            ).scalars()
        ]

    def resolve_errors(self, run_id: int, keys: Sequence[RecordKey]) -> int:
        """Closes the open entries of these exact keys (loaded, unchanged and valid, or gone from the source)."""
        if not keys:
            return 0
        return self.connection.exec_driver_sql(
            "update sync_error set resolved_at = now(), resolved_by_run_id = %(run)s where entity = %(entity)s "
            "and resolved_at is null and sync_run_id <> %(run)s and source_key = any(%(keys)s::jsonb[])",
            {"run": run_id, "entity": self.spec.entity, "keys": sorted({key_json(k) for k in keys})},
        ).rowcount

    def open_records_share(self, live_rows: int) -> tuple[int, float]:
        """Open quarantined records of this entity and their share of the table (live rows + open records)."""
        open_records = int(self.connection.execute(
            sa.select(sa.func.count(sa.distinct(sync_error.c.source_key))).where(
                sync_error.c.entity == self.spec.entity, sync_error.c.resolved_at.is_(None))
        ).scalar_one())
        total = live_rows + open_records
        return open_records, (open_records / total if total else 0.0)

    def save_watermark(self, run_id: int, value: Watermark) -> None:
        statement = postgresql.insert(sync_watermark).values(
            entity=self.spec.entity, source_system=self.spec.source_system, value=value, sync_run_id=run_id
        )
        self.connection.execute(
            statement.on_conflict_do_update(
                index_elements=[sync_watermark.c.entity],
                set_={"value": value, "sync_run_id": run_id, "updated_at": sa.func.now()},
            )
        )

    def finish(self, run_id: int, status: str, counts: dict[str, int], **fields: Any) -> None:
        self.connection.execute(
            sa.update(sync_run)
            .where(sync_run.c.id == run_id)
            .values(status=status, finished_at=dt.datetime.now(dt.UTC), **counts, **fields)
        )
