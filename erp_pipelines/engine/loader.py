"""Set-based loading into PostgreSQL: COPY, checks against the target in SQL, then one merge per batch.

Two paths per batch, one outcome:
- the bulk path, while the target table held no row at all when the run started (an initial load):
  parents are checked on the batch's distinct reference values, uniques on a narrow stage, then the
  good rows are COPied straight into the target. The whole initial load is one transaction in which
  the table's foreign-key constraints are dropped and re-added (validated once, set-based), the
  PostgreSQL manual's recipe for populating a table: other sessions never see the table without them;
- the merge path otherwise: the batch is staged whole, rows equal to the live target row are dropped
  first (so an unchanged re-sync writes nothing and checks nothing), the rest are checked and upserted.
Rows that fail a parent or unique check leave the stage and go to the quarantine; the batch goes on.
"""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass, field

import numpy as np
import pgpq
import psycopg2.errors
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from erp_pipelines.app_db.tables import TARGET_TABLES
from erp_pipelines.catalog import get_spec
from erp_pipelines.catalog.spec import ForeignKey, TableSpec

ROW = "_row"


def _q(name: str) -> str:
    """Quotes a catalog-defined identifier (never user input) for PostgreSQL."""
    return '"' + name.replace('"', '""') + '"'


def _columns(names: tuple[str, ...] | list[str], prefix: str = "") -> str:
    return ", ".join(f"{prefix}{_q(name)}" for name in names)


def _no_live_parent(fk: ForeignKey, alias: str) -> str:
    """`not exists` a live parent row for `alias`'s reference values, the parent side limited to the
    range `%(lowest)s`..`%(highest)s` of the first reference column (see `TargetWriter._bounds`)."""
    parent = TARGET_TABLES[get_spec(fk.parent).entity]
    pairs = list(zip(fk.columns, fk.parent_columns, strict=True))
    join = " and ".join(f"p.{_q(parent_column)} = {alias}.{_q(column)}" for column, parent_column in pairs)
    return (
        f"not exists (select 1 from {_q(parent.name)} p where {join} and p.deleted_at is null "
        f"and p.{_q(pairs[0][1])} between %(lowest)s and %(highest)s)"
    )


@dataclass
class BatchOutcome:
    """What one batch did to the target; `rejected` maps batch row positions to failed rules."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: dict[int, dict[str, str]] = field(default_factory=dict)


class TargetWriter:
    """Writes one entity's batches into its application table within the caller's transactions."""

    def __init__(self, connection: sa.Connection, spec: TableSpec, sync_run_id: int) -> None:
        self.connection = connection
        self.spec = spec
        self.sync_run_id = sync_run_id
        self.table = TARGET_TABLES[spec.entity]
        self.stage = f"stage_{spec.entity}"
        self.keystage = f"keystage_{spec.entity}"
        self.seen = f"seen_{spec.entity}"
        self.key = spec.business_key
        self.values = tuple(c for c in spec.column_names if c not in spec.business_key)
        checked = [*self.key]
        for names in [*(fk.columns for fk in spec.foreign_keys), *spec.unique]:
            checked.extend(name for name in names if name not in checked)
        self.checked = tuple(checked)
        self.bulk = False
        self.single_transaction = False
        self.foreign_keys = sorted(self.table.foreign_key_constraints, key=lambda fk: fk.name)
        self.tracks_seen_keys = False

    def _execute(self, statement: str, parameters: dict | None = None) -> sa.CursorResult:
        return self.connection.exec_driver_sql(statement, parameters or {})

    def _bounds(self, table: str, column: str) -> dict[str, object]:
        """The lowest and highest value of a staged column, taken by the database (in its collation).

        Batches arrive ordered by key, so limiting the target or parent side to this range turns a scan
        of the whole table per batch into an index range scan. They are passed as values, not as
        sub-queries, so the planner sees how wide the range really is (a batch of scattered changed
        keys spans the table, and then probing the index per row is the better plan).
        """
        row = self._execute(f"select min({_q(column)}), max({_q(column)}) from {_q(table)}").one()
        return {"lowest": row[0], "highest": row[1]}

    def _temporary(self, name: str, columns: tuple[str, ...] | list[str], numbered: bool = True) -> None:
        self._execute(f"drop table if exists {_q(name)}")
        row = f", 0::integer as {ROW}" if numbered else ""
        self._execute(
            f"create temporary table {_q(name)} as select {_columns(columns)}{row} "
            f"from {_q(self.table.name)} with no data"
        )

    def prepare(self, track_seen_keys: bool) -> None:
        """Temporary tables of this connection and the choice of path.

        An empty target means an initial load: it runs as one transaction (see the module docstring)
        and needs no seen-key tracking, since nothing can have been deleted from an empty table.
        """
        self._temporary(self.stage, self.spec.column_names)
        self._temporary(self.keystage, self.checked)
        for index, fk in enumerate(self.spec.foreign_keys):
            self._temporary(f"fkvalues_{self.spec.entity}_{index}", fk.columns, numbered=False)
        self.bulk = self._execute(f"select not exists (select 1 from {_q(self.table.name)})").scalar_one()
        self.tracks_seen_keys = track_seen_keys and not self.bulk
        if self.tracks_seen_keys:
            self._temporary(self.seen, self.key, numbered=False)
        self.connection.commit()
        if self.bulk:
            self.single_transaction = True
            for constraint in self.foreign_keys:
                self._execute(f"alter table {_q(self.table.name)} drop constraint {_q(constraint.name)}")

    def finish(self) -> None:
        """Ends an initial load: statistics for the planner (the table went from empty to full, and the
        next runs' checks are planned with them), then the foreign keys re-added (and so validated)
        inside its transaction."""
        if self.single_transaction:
            self._execute(f"analyze {_q(self.table.name)}")
            for constraint in self.foreign_keys:
                self._execute(str(sa.schema.AddConstraint(constraint).compile(dialect=self.connection.dialect)))

    def _copy(self, table_name: str, data: pa.Table) -> None:
        """COPY in PostgreSQL's binary format, encoded straight from Arrow (no text round trip)."""
        if data.num_rows == 0:
            return
        encoder = pgpq.ArrowToPostgresBinaryEncoder(data.schema)
        buffer = io.BytesIO()
        buffer.write(encoder.write_header())
        for batch in data.to_batches():
            buffer.write(encoder.write_batch(batch))
        buffer.write(encoder.finish())
        buffer.seek(0)
        cursor = self.connection.connection.driver_connection.cursor()
        try:
            cursor.copy_expert(
                f"copy {_q(table_name)} ({_columns(data.column_names)}) from stdin with (format binary)", buffer
            )
        finally:
            cursor.close()

    def remember_keys(self, keys: pa.Table) -> None:
        """Keys read in a full sync; whatever the target holds beyond them was deleted at the source."""
        self._copy(self.seen, keys)

    def write(self, rows: pa.Table, positions: np.ndarray) -> BatchOutcome:
        """Loads a batch of validated rows; `positions` are their row numbers in the raw batch."""
        numbered = rows.append_column(ROW, pa.array(positions, pa.int32()))
        self._execute(f"truncate {_q(self.stage)}, {_q(self.keystage)}")
        if self.bulk:
            self._execute("savepoint bulk_path")
            try:
                return self._write_bulk(numbered)
            except psycopg2.errors.UniqueViolation:
                self._execute("rollback to savepoint bulk_path")
                self.bulk = False
        return self._write_merge(numbered)

    def _write_bulk(self, numbered: pa.Table) -> BatchOutcome:
        rejected = self._missing_parents(numbered)
        if self.spec.unique:
            candidates = numbered
            if rejected:
                candidates = numbered.filter(
                    pc.invert(pc.is_in(numbered.column(ROW), value_set=pa.array(list(rejected), pa.int32())))
                )
            self._copy(self.keystage, candidates.select([*self.checked, ROW]))
            for row, rules in self._reject_failing(self.keystage, parents=False).items():
                rejected.setdefault(row, {}).update(rules)
        keep = numbered
        if rejected:
            mask = pc.invert(pc.is_in(numbered.column(ROW), value_set=pa.array(list(rejected), pa.int32())))
            keep = numbered.filter(mask)
        data = keep.drop_columns([ROW])
        data = data.append_column("sync_run_id", pa.array(np.full(data.num_rows, self.sync_run_id), pa.int64()))
        self._copy(self.table.name, data)
        return BatchOutcome(created=data.num_rows, rejected=rejected)

    def _write_merge(self, numbered: pa.Table) -> BatchOutcome:
        self._copy(self.stage, numbered)
        unchanged = self._drop_unchanged()
        rejected = self._reject_failing(self.stage)
        created, updated = self._upsert()
        return BatchOutcome(created=created, updated=updated, unchanged=unchanged, rejected=rejected)

    def _missing_parents(self, numbered: pa.Table) -> dict[int, dict[str, str]]:
        """Parent checks on the batch's distinct reference values (far fewer than its rows)."""
        rejected: dict[int, dict[str, str]] = {}
        for index, fk in enumerate(self.spec.foreign_keys):
            table = f"fkvalues_{self.spec.entity}_{index}"
            values = numbered.select(list(fk.columns)).group_by(list(fk.columns)).aggregate([])
            values = values.filter(functools.reduce(pc.and_, (pc.is_valid(c) for c in values.columns)))
            self._execute(f"truncate {_q(table)}")
            self._copy(table, values)
            missing = self._execute(
                f"select {_columns(fk.columns, 'v.')} from {_q(table)} v where {_no_live_parent(fk, 'v')}",
                self._bounds(table, fk.columns[0]),
            ).fetchall()
            if not missing:
                continue
            wanted = {tuple(row) for row in missing}
            columns = [numbered.column(c).to_pylist() for c in fk.columns]
            for position, row in zip(numbered.column(ROW).to_pylist(), zip(*columns, strict=True), strict=True):
                if row in wanted:
                    shown = ", ".join(f"{c}={v!r}" for c, v in zip(fk.columns, row, strict=True))
                    rejected.setdefault(position, {})[f"missing_parent:{fk.parent}"] = (
                        f"parent {fk.parent} ({shown}) is not in the application database"
                    )
        return rejected

    def _drop_unchanged(self) -> int:
        """Staged rows equal to their live target row need nothing: no check, no write."""
        match = " and ".join(f"t.{_q(c)} = s.{_q(c)}" for c in self.key)
        match += f" and t.{_q(self.key[0])} between %(lowest)s and %(highest)s"
        same = (
            f" and ({_columns(self.values, 't.')}) is not distinct from ({_columns(self.values, 's.')})"
            if self.values
            else ""
        )
        return self._execute(
            f"delete from {_q(self.stage)} s using {_q(self.table.name)} t "
            f"where {match} and t.deleted_at is null{same}",
            self._bounds(self.stage, self.key[0]),
        ).rowcount

    def _reject_failing(self, stage: str, parents: bool = True) -> dict[int, dict[str, str]]:
        """Removes staged rows with a missing parent or a unique value held by another live row."""
        rejected: dict[int, dict[str, str]] = {}
        key = _columns(self.key, "s.")
        for fk in self.spec.foreign_keys if parents else ():
            present = " and ".join(f"s.{_q(c)} is not null" for c in fk.columns)
            rows = self._execute(
                f"delete from {_q(stage)} s where {present} and {_no_live_parent(fk, 's')} "
                f"returning s.{ROW}, {_columns(fk.columns, 's.')}",
                self._bounds(stage, fk.columns[0]),
            ).fetchall()
            for row in rows:
                values = ", ".join(f"{c}={v!r}" for c, v in zip(fk.columns, row[1:], strict=True))
                rejected.setdefault(row[0], {})[f"missing_parent:{fk.parent}"] = (
                    f"parent {fk.parent} ({values}) is not in the application database"
                )
        for unique in self.spec.unique:
            same_value = " and ".join(f"t.{_q(c)} = s.{_q(c)}" for c in unique)
            rows = self._execute(
                f"delete from {_q(stage)} s where exists (select 1 from {_q(self.table.name)} t "
                f"where {same_value} and t.deleted_at is null and ({_columns(self.key, 't.')}) <> ({key})) "
                f"returning s.{ROW}, {_columns(unique, 's.')}"
            ).fetchall()
            for row in rows:
                values = ", ".join(f"{c}={v!r}" for c, v in zip(unique, row[1:], strict=True))
                rejected.setdefault(row[0], {})[f"duplicate_{'_'.join(unique)}"] = (
                    f"{values} is already held by another {self.spec.entity}"
                )
        return rejected

    def _upsert(self) -> tuple[int, int]:
        """Inserts new rows, updates changed or revived ones; returns (created, updated)."""
        updates = ", ".join(f"{_q(c)} = excluded.{_q(c)}" for c in self.values)
        row = self._execute(
            f"with changed as (insert into {_q(self.table.name)} ({_columns(self.spec.column_names)}, "
            f"synced_at, deleted_at, sync_run_id) "
            f"select {_columns(self.spec.column_names)}, now(), null, %(run)s from {_q(self.stage)} "
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
        if not self.tracks_seen_keys:
            return 0
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
