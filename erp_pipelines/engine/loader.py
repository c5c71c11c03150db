"""Set-based loading into PostgreSQL: COPY into a staging table, then one merge per batch.

Only rows that are new or whose values differ are written, so an unchanged re-sync rewrites nothing.
Foreign keys and business uniques are checked against the target in SQL before the merge; the rows
that fail them leave the stage and go to the quarantine instead of aborting the batch.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.csv as pa_csv
import sqlalchemy as sa

from erp_pipelines.app_db.tables import TARGET_TABLES
from erp_pipelines.catalog import get_spec
from erp_pipelines.catalog.spec import TableSpec


def _q(name: str) -> str:
    """Quotes a catalog-defined identifier (never user input) for PostgreSQL."""
    return '"' + name.replace('"', '""') + '"'


def _columns(names: tuple[str, ...] | list[str], prefix: str = "") -> str:
    return ", ".join(f"{prefix}{_q(name)}" for name in names)


@dataclass(frozen=True)
class LateRejection:
    """A staged row refused by a check against the target (missing parent, taken unique value)."""

    key: tuple[object, ...]
    rule: str
    message: str


class TargetWriter:
    """Writes one entity's batches into its application table within the caller's transactions."""

    def __init__(self, connection: sa.Connection, spec: TableSpec, sync_run_id: int) -> None:
        self.connection = connection
        self.spec = spec
        self.sync_run_id = sync_run_id
        self.table = TARGET_TABLES[spec.entity]
        self.stage = f"stage_{spec.entity}"
        self.seen = f"seen_{spec.entity}"
        self.key = spec.business_key
        self.values = tuple(c for c in spec.column_names if c not in spec.business_key)

    def _execute(self, statement: str, parameters: dict | None = None) -> sa.CursorResult:
        return self.connection.exec_driver_sql(statement, parameters or {})

    def prepare(self, track_seen_keys: bool) -> None:
        """Temporary tables of this connection: the stage (emptied at each commit) and the seen keys."""
        target = _q(self.table.name)
        self._execute(f"drop table if exists {_q(self.stage)}")
        self._execute(
            f"create temporary table {_q(self.stage)} on commit delete rows as "
            f"select {_columns(self.spec.column_names)} from {target} with no data"
        )
        if track_seen_keys:
            self._execute(f"drop table if exists {_q(self.seen)}")
            self._execute(
                f"create temporary table {_q(self.seen)} as select {_columns(self.key)} from {target} with no data"
            )
        self.connection.commit()

    def _copy(self, table_name: str, data: pa.Table) -> None:
        if data.num_rows == 0:
            return
        buffer = io.BytesIO()
        pa_csv.write_csv(data, buffer, pa_csv.WriteOptions(include_header=False))
        buffer.seek(0)
        cursor = self.connection.connection.driver_connection.cursor()
        try:
            cursor.copy_expert(
                f"copy {_q(table_name)} ({_columns(data.column_names)}) from stdin with (format csv)", buffer
            )
        finally:
            cursor.close()

    def stage_rows(self, rows: pa.Table) -> None:
        self._copy(self.stage, rows)

    def remember_keys(self, keys: pa.Table) -> None:
        """Keys read in a full sync; whatever the target holds beyond them was deleted at the source."""
        self._copy(self.seen, keys)

    def reject_against_target(self) -> list[LateRejection]:
        """Removes staged rows with a missing parent or a unique value held by another live row."""
        rejections: list[LateRejection] = []
        key = _columns(self.key, "s.")
        for fk in self.spec.foreign_keys:
            parent = TARGET_TABLES[get_spec(fk.parent).entity]
            join = " and ".join(
                f"p.{_q(pc)} = s.{_q(c)}" for c, pc in zip(fk.columns, fk.parent_columns, strict=True)
            )
            present = " and ".join(f"s.{_q(c)} is not null" for c in fk.columns)
            rows = self._execute(
                f"delete from {_q(self.stage)} s where {present} and not exists (select 1 from {_q(parent.name)} p "
                f"where {join} and p.deleted_at is null) returning {key}, {_columns(fk.columns, 's.')}"
            ).fetchall()
            for row in rows:
                parent_key = ", ".join(f"{c}={v!r}" for c, v in zip(fk.columns, row[len(self.key):], strict=True))
                rejections.append(
                    LateRejection(
                        tuple(row[: len(self.key)]),
                        f"missing_parent:{fk.parent}",
                        f"parent {fk.parent} ({parent_key}) is not in the application database",
                    )
                )
        for unique in self.spec.unique:
            same_value = " and ".join(f"t.{_q(c)} = s.{_q(c)}" for c in unique)
            rows = self._execute(
                f"delete from {_q(self.stage)} s where exists (select 1 from {_q(self.table.name)} t "
                f"where {same_value} and t.deleted_at is null and ({_columns(self.key, 't.')}) <> ({key})) "
                f"returning {key}, {_columns(unique, 's.')}"
            ).fetchall()
            for row in rows:
                values = ", ".join(f"{c}={v!r}" for c, v in zip(unique, row[len(self.key):], strict=True))
                rejections.append(
                    LateRejection(
                        tuple(row[: len(self.key)]),
                        f"duplicate_{'_'.join(unique)}",
                        f"{values} is already held by another {self.spec.entity}",
                    )
                )
        return rejections

    def merge(self) -> tuple[int, int]:
        """Upserts staged rows that are new, revived or different; returns (created, updated)."""
        target = _q(self.table.name)
        key_join = " and ".join(f"t.{_q(c)} = s.{_q(c)}" for c in self.key)
        changed = (
            f"or ({_columns(self.values, 't.')}) is distinct from ({_columns(self.values, 's.')})"
            if self.values
            else ""
        )
        updates = ", ".join(f"{_q(c)} = excluded.{_q(c)}" for c in self.values)
        row = self._execute(
            f"with changed as (insert into {target} as t ({_columns(self.spec.column_names)}, "
            f"synced_at, deleted_at, sync_run_id) "
            f"select {_columns(self.spec.column_names, 's.')}, now(), null, %(run)s from {_q(self.stage)} s "
            f"left join {target} t on {key_join} "
            f"where t.{_q(self.key[0])} is null or t.deleted_at is not null {changed} "
            f"on conflict ({_columns(self.key)}) do update set "
            f"{updates + ', ' if updates else ''}synced_at = now(), deleted_at = null, "
            f"sync_run_id = excluded.sync_run_id "
            f"returning (xmax = 0) as inserted) "
            f"select count(*) filter (where inserted), count(*) filter (where not inserted) from changed",
            {"run": self.sync_run_id},
        ).one()
        return int(row[0]), int(row[1])

    def soft_delete_missing(self) -> int:
        """After a complete full read: live target rows whose key was not read are marked deleted."""
        match = " and ".join(f"k.{_q(c)} = t.{_q(c)}" for c in self.key)
        return self._execute(
            f"update {_q(self.table.name)} t set deleted_at = now(), sync_run_id = %(run)s "
            f"where t.deleted_at is null and not exists (select 1 from {_q(self.seen)} k where {match})",
            {"run": self.sync_run_id},
        ).rowcount

    def soft_delete_keys(self, keys: pa.Table) -> int:
        """Marks the given keys deleted (deletions reported by the source)."""
        if keys.num_rows == 0:
            return 0
        self._execute(f"drop table if exists {_q(self.seen)}")
        self._execute(
            f"create temporary table {_q(self.seen)} as select {_columns(self.key)} "
            f"from {_q(self.table.name)} with no data"
        )
        self._copy(self.seen, keys)
        match = " and ".join(f"k.{_q(c)} = t.{_q(c)}" for c in self.key)
        return self._execute(
            f"update {_q(self.table.name)} t set deleted_at = now(), sync_run_id = %(run)s "
            f"where t.deleted_at is null and exists (select 1 from {_q(self.seen)} k where {match})",
            {"run": self.sync_run_id},
        ).rowcount
