"""Where a spec's rows land: a table the project owns (created from the spec, audit columns, soft deletes by
`deleted_at`) or a table the application owns (`ApplicationTable`: its column names, surrogate ids for
references, its own deletion policy, nothing but rows ever written).

The loader speaks in spec column names (the stage) and asks the target for everything about the table: its
SQL name, the column a spec column lands in, the live-row rule, which rows belong to the spec, how to
delete, revive and vacate. Each fact is decided here once per kind.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from erp_pipelines.app_db.engine import PROJECT_SCHEMA
from erp_pipelines.app_db.tables import AUDIT_COLUMNS, table_of
from erp_pipelines.core.spec import (
    DELETED_AT,
    ApplicationTable,
    ForeignKey,
    HardDelete,
    KeepDeleted,
    SoftDeleteFlag,
    SoftDeleteTimestamp,
    TableSpec,
    live,
)
from erp_pipelines.engine.postgres import quote


def sql_type(column_type: sa.types.TypeEngine) -> str:
    """The PostgreSQL spelling of a spec column's type (stages and key tables are built from the spec)."""
    return column_type.compile(dialect=postgresql.dialect())


def typed_columns(spec: TableSpec, names: Iterable[str]) -> str:
    return ", ".join(f"{quote(name)} {sql_type(spec.column(name).sql_type)}" for name in names)


@dataclass(frozen=True)
class Reference:
    """A foreign key written as the parent's surrogate id (application tables only)."""

    fk: ForeignKey
    column: str
    parent: Target


class Target:
    """A project-owned table: the spec's own names, audit columns, `deleted_at` soft deletes."""

    def __init__(self, spec: TableSpec) -> None:
        self.spec = spec

    @property
    def name(self) -> str:
        return quote(table_of(self.spec).name)

    @property
    def owned_by_project(self) -> bool:
        return True

    @property
    def qualified_name(self) -> str:
        """schema.table as the catalog names it (for lineage metadata)."""
        return f"{PROJECT_SCHEMA}.{self.spec.target_table}"

    def column(self, spec_column: str) -> str:
        return spec_column

    def columns(self, spec_columns: Iterable[str], alias: str = "") -> str:
        prefix = alias + "." if alias else ""
        return ", ".join(prefix + quote(self.column(name)) for name in spec_columns)

    def live(self, alias: str = "") -> str:
        return live(alias)

    def owned(self, alias: str = "") -> str:
        """The rows this spec manages (all of a project table; an application table may hold other rows)."""
        return "true"

    @property
    def keeps_deleted(self) -> bool:
        return False

    @property
    def references(self) -> tuple[Reference, ...]:
        return ()

    @property
    def written(self) -> list[tuple[str, str]]:
        """(target column, SQL over the stage row `s`) of every column an upsert writes, key first."""
        key = list(self.spec.business_key)
        names = key + [c for c in self.spec.column_names if c not in key]
        return [(name, f"s.{quote(name)}") for name in names]

    @property
    def stage_joins(self) -> str:
        """Tables `written` reads besides the stage row `s`."""
        return ""

    def insert_audit(self, run: str) -> tuple[list[str], list[str]]:
        return list(AUDIT_COLUMNS), ["now()", "null", run]

    def revive(self) -> str:
        """What an upsert sets on an existing row besides its values (it is live again)."""
        return f"synced_at = now(), {DELETED_AT} = null, sync_run_id = excluded.sync_run_id"

    def delete(self, gone: str, match: str, run: str) -> str:
        """A statement deleting the live rows matched by `gone d`, returning `d.reason` per row."""
        return (f"update {self.name} t set {DELETED_AT} = now(), sync_run_id = {run} from {gone} d "
                f"where {match} and {self.live('t')} returning d.reason")

    def vacate(self, unique: Sequence[str], moving: str) -> list[str]:
        """Statements that free the unique values rows are about to take (`moving` selects target rows `t`)."""
        return [f"update {self.name} t set {DELETED_AT} = now() where {moving}"]

    def count_live(self, connection: sa.Connection) -> int:
        return int(connection.exec_driver_sql(
            f"select count(*) from {self.name} t where {self.live('t')} and {self.owned('t')}").scalar_one())

    def foreign_keys_for_initial_load(self) -> list[sa.ForeignKeyConstraint]:
        """Constraints an initial load drops and adds back (the PostgreSQL manual's bulk-load recipe)."""
        return sorted(table_of(self.spec).foreign_key_constraints, key=lambda fk: fk.name or "")

    def indexes_for_initial_load(self, connection: sa.Connection) -> list[IndexRebuild]:
        """The primary key and indexes an initial load builds after the rows are in ("Remove Indexes": "the
        fastest method is to create the table, bulk load the table's data using COPY, then create any indexes
        needed for the table. Creating an index on pre-existing data is quicker than updating it incrementally
        as each row is loaded", PostgreSQL manual, Populating a Database). 1M product_stock rows: 3.68 s into
        the indexed table, 1.49 s + 0.66 s for the primary key afterwards (2026-12-03). A key that another
        table's foreign key references stays: dropping it would take the referencing tables' constraints."""
        table = table_of(self.spec)
        referenced = set(connection.exec_driver_sql(
            "select i.relname from pg_constraint c join pg_class i on i.oid = c.conindid "
            "where c.contype = 'f' and c.confrelid = %(table)s::regclass", {"table": self.name}).scalars())
        rebuilds = []
        if table.primary_key.name and table.primary_key.name not in referenced:
            rebuilds.append(IndexRebuild(f"alter table {self.name} drop constraint {quote(table.primary_key.name)}",
                                         sa.schema.AddConstraint(table.primary_key)))
        for index in sorted(table.indexes, key=lambda i: str(i.name)):
            if index.name not in referenced:
                rebuilds.append(IndexRebuild(f"drop index {quote(PROJECT_SCHEMA)}.{quote(str(index.name))}",
                                             sa.schema.CreateIndex(index)))
        return rebuilds


@dataclass(frozen=True)
class IndexRebuild:
    """An index an initial load drops before its insert and creates again after it."""

    drop: str
    create: sa.schema.ExecutableDDLElement


class ApplicationTarget(Target):
    """A table the application owns: mapped names, surrogate-id references, the application's deletion
    policy; no audit columns (the run's provenance stays in `sync_run`), no DDL ever."""

    def __init__(self, spec: TableSpec, table: ApplicationTable) -> None:
        super().__init__(spec)
        self.table = table

    @property
    def name(self) -> str:
        return f"{quote(self.table.schema)}.{quote(self.table.table)}"

    @property
    def owned_by_project(self) -> bool:
        return False

    @property
    def qualified_name(self) -> str:
        return f"{self.table.schema}.{self.table.table}"

    def column(self, spec_column: str) -> str:
        return self.table.column(spec_column)

    def live(self, alias: str = "") -> str:
        prefix = alias + "." if alias else ""
        deletion = self.table.deletion
        if isinstance(deletion, SoftDeleteFlag):
            return f"{prefix}{quote(deletion.column)}"
        if isinstance(deletion, SoftDeleteTimestamp):
            return f"{prefix}{quote(deletion.column)} is null"
        return "true"

    def owned(self, alias: str = "") -> str:
        prefix = alias + "." if alias else ""
        return " and ".join(f"{prefix}{quote(self.column(k))} is not null" for k in self.spec.business_key)

    @property
    def keeps_deleted(self) -> bool:
        return isinstance(self.table.deletion, KeepDeleted)

    @functools.cached_property
    def references(self) -> tuple[Reference, ...]:
        return tuple(Reference(fk, self.table.reference(fk), target_of(fk.parent)) for fk in self.spec.foreign_keys)

    @property
    def replaced_by_references(self) -> set[str]:
        """Spec columns that are not application columns: their values only find the parent's id (a key column
        stays, since rows are matched by it)."""
        return {name for ref in self.references for name in ref.fk.columns} - set(self.spec.business_key)

    @property
    def written(self) -> list[tuple[str, str]]:
        referencing = self.replaced_by_references
        mapped = [(self.column(name), expression) for name, expression in super().written if name not in referencing]
        for number, ref in enumerate(self.references):
            mapped.append((ref.column, f"p{number}.{quote(ref.parent.table_surrogate_key)}"))
        return mapped

    @property
    def stage_joins(self) -> str:
        """Each reference's live parent row, joined to the stage rows `s` (its id is `written`). A join, not a
        subquery per row (an index probe each): the application-owned stock initial load took 9.19-9.74 s in the
        engine against 9.49-10.11 s before (2026-12-03, within the spread). A missing parent was rejected before,
        so a NULL id here is a NULL reference; the drift check requires a unique index on the parent's key."""
        joins = []
        for number, ref in enumerate(self.references):
            parent, alias = ref.parent, f"p{number}"
            match = " and ".join(f"{alias}.{quote(parent.column(pc))} = s.{quote(c)}"
                                 for c, pc in zip(ref.fk.columns, ref.fk.parent_columns, strict=True))
            joins.append(f" left join {parent.name} {alias} on {match} and {parent.live(alias)}")
        return "".join(joins)

    @property
    def table_surrogate_key(self) -> str:
        return self.table.surrogate_key

    def insert_audit(self, run: str) -> tuple[list[str], list[str]]:
        return [], []

    def revive(self) -> str:
        deletion = self.table.deletion
        if isinstance(deletion, SoftDeleteFlag):
            return f"{quote(deletion.column)} = true"
        if isinstance(deletion, SoftDeleteTimestamp):
            return f"{quote(deletion.column)} = null"
        return ""

    def delete(self, gone: str, match: str, run: str) -> str:
        deletion = self.table.deletion
        if isinstance(deletion, HardDelete):
            return f"delete from {self.name} t using {gone} d where {match} returning d.reason"
        if isinstance(deletion, SoftDeleteFlag):
            mark = f"{quote(deletion.column)} = false"
        elif isinstance(deletion, SoftDeleteTimestamp):
            mark = f"{quote(deletion.column)} = now()"
        else:
            raise ValueError(f"{self.qualified_name} keeps deleted rows: nothing is deleted (`keeps_deleted`)")
        return f"update {self.name} t set {mark} from {gone} d where {match} and {self.live('t')} returning d.reason"

    def vacate(self, unique: Sequence[str], moving: str) -> list[str]:
        """The application's unique constraint covers every row, deleted or not: a moving value is set to
        NULL on its old row first (the drift check requires such columns to be nullable), and so is a
        value still held by a row deleted earlier, which the live-row rules already let go."""
        cleared = ", ".join(f"{quote(self.column(c))} = null" for c in unique)
        return [f"update {self.name} t set {cleared} where {moving}"]

    def foreign_keys_for_initial_load(self) -> list[sa.ForeignKeyConstraint]:
        return []

    def indexes_for_initial_load(self, connection: sa.Connection) -> list[IndexRebuild]:
        return []


def target_of(spec: TableSpec) -> Target:
    """The target a spec writes: the application's table once `onto_application` chose it."""
    if spec.writes_application and spec.application is not None:
        return ApplicationTarget(spec, spec.application)
    return Target(spec)
