"""The audit trail: one `sync_run` row per table per run, `sync_error` per rejected record, watermarks."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from erp_pipelines.app_db.tables import sync_error, sync_run, sync_watermark
from erp_pipelines.catalog.spec import TableSpec
from erp_pipelines.engine.decoders import python_value
from erp_pipelines.sources.base import Watermark


def source_keys(spec: TableSpec, raw: pa.RecordBatch | pa.Table) -> pa.Array:
    """How a record is named in the quarantine: its raw source key values, trimmed, joined by '|'."""
    parts = [pc.utf8_trim(pc.cast(raw.column(name), pa.string()), characters=" ") for name in spec.source_key_columns]
    parts = [pc.fill_null(part, "") for part in parts]
    return parts[0] if len(parts) == 1 else pc.binary_join_element_wise(*parts, "|")


def raw_records(raw: pa.RecordBatch, rows: Sequence[int]) -> list[dict[str, Any]]:
    """The raw source records at `rows`, JSON-safe (converted column-wise, not value by value)."""
    taken = raw.take(pa.array(rows, pa.int64()))
    return [
        {name: python_value(value) for name, value in record.items()}
        for record in taken.to_pylist()
    ]


class Audit:
    """Reads and writes the audit tables on the sync's own connection (same transactions as the data)."""

    def __init__(self, connection: sa.Connection, spec: TableSpec) -> None:
        self.connection = connection
        self.spec = spec

    def load_watermark(self) -> Watermark | None:
        return self.connection.execute(
            sa.select(sync_watermark.c.value).where(sync_watermark.c.entity == self.spec.entity)
        ).scalar_one_or_none()

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
                                  "nothing after its last committed batch was applied")
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
        self, run_id: int, raw: pa.RecordBatch, rows: Sequence[int], rules: Sequence[dict[str, str]]
    ) -> int:
        """Quarantines rejected rows with every failed rule, the source key and the raw record.

        A record already held open in the quarantine with the same raw content (re-read through the
        overlap window, or by a full sync) is not stored twice. Returns how many were new.
        """
        if not rows:
            return 0
        keys = source_keys(self.spec, raw.take(pa.array(rows, pa.int64()))).to_pylist()
        # One canonical JSON text per record: stored, and compared with what the quarantine already holds.
        records = [json.dumps(record, sort_keys=True, default=str) for record in raw_records(raw, rows)]
        known = {
            (key, json.dumps(record, sort_keys=True))
            for key, record in self.connection.execute(
                sa.select(sync_error.c.source_key, sync_error.c.raw_record).where(
                    sync_error.c.entity == self.spec.entity,
                    sync_error.c.resolved_at.is_(None),
                    sync_error.c.source_key.in_(keys),
                )
            )
        }
        new = [
            (run_id, self.spec.source_system, self.spec.entity, key, json.dumps(sorted(failed)),
             "; ".join(failed.values()), record)
            for key, record, failed in zip(keys, records, rules, strict=True)
            if (key, record) not in known
        ]
        self._copy_errors(new)
        return len(new)

    def _copy_errors(self, rows: list[tuple[Any, ...]]) -> None:
        """COPY, not one INSERT per record: a run may quarantine a whole table (a parent not loaded)."""
        if not rows:
            return
        buffer = io.StringIO()
        csv.writer(buffer, quoting=csv.QUOTE_ALL, lineterminator="\n").writerows(rows)
        buffer.seek(0)
        cursor = self.connection.connection.driver_connection.cursor()
        try:
            cursor.copy_expert(
                "copy sync_error (sync_run_id, source_system, entity, source_key, rules, error_message, raw_record) "
                "from stdin with (format csv)",
                buffer,
            )
        finally:
            cursor.close()

    def has_open_errors(self) -> bool:
        return self.connection.execute(
            sa.select(sa.literal(1))
            .where(sync_error.c.entity == self.spec.entity, sync_error.c.resolved_at.is_(None))
            .limit(1)
        ).first() is not None

    def open_error_keys(self) -> list[str]:
        """Distinct source keys of this entity's records still held in quarantine."""
        return list(
            self.connection.execute(
                sa.select(sync_error.c.source_key)
                .where(sync_error.c.entity == self.spec.entity, sync_error.c.resolved_at.is_(None))
                .distinct()
                .order_by(sync_error.c.source_key)
            ).scalars()
        )

    def resolve_errors(self, run_id: int, loaded_keys: list[str]) -> int:
        """Closes open quarantine entries whose record has now loaded (replay or a fixed source)."""
        if not loaded_keys:
            return 0
        return self.connection.execute(
            sa.update(sync_error)
            .where(
                sync_error.c.entity == self.spec.entity,
                sync_error.c.resolved_at.is_(None),
                sync_error.c.source_key.in_(loaded_keys),
                sync_error.c.sync_run_id != run_id,
            )
            .values(resolved_at=sa.func.now(), resolved_by_run_id=run_id)
        ).rowcount

    def save_watermark(self, run_id: int, value: Watermark) -> None:
        statement = sa.dialects.postgresql.insert(sync_watermark).values(
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
