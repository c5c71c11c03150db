"""SQLAlchemy tables of the application database: the audit tables, and each synced table built from its spec.

The specs are the single source of truth for the synced tables; Alembic migrations are generated from
this metadata (with every catalog table added, `erp_pipelines.catalog.application_metadata`) and a test
checks they never drift apart. Nothing here reads the catalog: the engine passes the spec it syncs.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from erp_pipelines.core.spec import DELETED_AT, TableSpec, live

metadata = sa.MetaData(
    naming_convention={
        "pk": "pk_%(table_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ix": "ix_%(table_name)s_%(column_0_name)s",
    }
)

sync_run = sa.Table(
    "sync_run",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("source_system", sa.Text, nullable=False),
    sa.Column("entity", sa.Text, nullable=False),
    sa.Column("source_table", sa.Text, nullable=False),
    sa.Column("target_table", sa.Text, nullable=False),
    sa.Column("mode", sa.Text, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("processed", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("created", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("updated", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("unchanged", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("deleted", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("rejected", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("finished_at", sa.DateTime(timezone=True)),
    sa.Column("dagster_run_id", sa.Text),
    sa.Column("watermark_before", JSONB),
    sa.Column("watermark_after", JSONB),
    sa.Column("error_message", sa.Text),
    sa.CheckConstraint(
        "status in ('RUNNING', 'COMPLETED', 'PARTIALLY_COMPLETED', 'FAILED')", name="ck_sync_run_status"
    ),
    sa.Index("ix_sync_run_entity_started", "entity", "started_at"),
)

sync_error = sa.Table(
    "sync_error",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("sync_run_id", sa.BigInteger, sa.ForeignKey("sync_run.id", ondelete="CASCADE"), nullable=False),
    sa.Column("source_system", sa.Text, nullable=False),
    sa.Column("entity", sa.Text, nullable=False),
    sa.Column("source_key", JSONB, nullable=False,
              comment="the record's exact key: a JSON array of its raw key values"),
    sa.Column("rules", JSONB, nullable=False),
    sa.Column("error_message", sa.Text, nullable=False),
    sa.Column("raw_record", JSONB, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("resolved_at", sa.DateTime(timezone=True)),
    sa.Column("resolved_by_run_id", sa.BigInteger, sa.ForeignKey("sync_run.id", ondelete="SET NULL")),
    sa.Index("ix_sync_error_open", "entity", "source_key", postgresql_where=sa.text("resolved_at is null")),
    sa.Index("ix_sync_error_sync_run_id", "sync_run_id"),
)

sync_watermark = sa.Table(
    "sync_watermark",
    metadata,
    sa.Column("entity", sa.Text, primary_key=True),
    sa.Column("source_system", sa.Text, nullable=False),
    sa.Column("value", JSONB, nullable=False),
    sa.Column("sync_run_id", sa.BigInteger, sa.ForeignKey("sync_run.id", ondelete="SET NULL")),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
)

sync_alert = sa.Table(
    "sync_alert",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("entity", sa.Text, nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("last_materialized_at", sa.DateTime(timezone=True)),
    sa.Column("run_key", sa.Text),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Index("ix_sync_alert_entity_created", "entity", "created_at"),
)

source_change = sa.Table(
    "source_change",
    metadata,
    sa.Column("entity", sa.Text, primary_key=True),
    sa.Column("source_key", JSONB, primary_key=True, comment="the record's exact key, as in sync_error"),
    sa.Column("changed_at", sa.DateTime, comment="when the source recorded the change (its local time)"),
    sa.Column("changed_by", sa.Text, comment="the source's user profile that made it"),
    sa.Column("job", sa.Text, comment="the job that made it (IBM i: number/user/name)"),
    sa.Column("program", sa.Text, comment="the program that made it (IBM i: library/program)"),
    sa.Column("position", sa.Text, comment="where the source recorded it (journal and sequence)"),
    sa.Column("sync_run_id", sa.BigInteger, sa.ForeignKey("sync_run.id", ondelete="SET NULL")),
    comment="Per record, the last change at the source the sync saw, when the source records who made it",
)

AUDIT_COLUMNS = ("synced_at", DELETED_AT, "sync_run_id")
_TARGET_TABLES: dict[str, tuple[TableSpec, sa.Table]] = {}


def table_of(spec: TableSpec) -> sa.Table:
    """The application table of a spec, built from the spec alone (its parents first, for the foreign keys).

    One table per name in `metadata`: a second spec naming the same table with other columns is refused,
    never given the first one's definition."""
    known = _TARGET_TABLES.get(spec.target_table)
    if known:
        first, table = known
        if first is not spec and [c.target for c in first.columns] != [c.target for c in spec.columns]:
            raise ValueError(
                f"spec {spec.entity!r} defines table {spec.target_table!r} with other columns than spec "
                f"{first.entity!r}"
            )
        return table
    for parent in spec.parents:
        table_of(parent)
    table = build_table(spec, metadata)
    _TARGET_TABLES[spec.target_table] = (spec, table)
    return table


def build_table(spec: TableSpec, into: sa.MetaData) -> sa.Table:
    """The target table of a spec in `into`: `table_of` builds it in the project's metadata, `erp-sync scaffold`
    in a metadata of its own to render the table's migration (its parents must be in `into` already)."""
    columns = [
        sa.Column(column.target, column.sql_type, nullable=column.nullable, comment=column.description or None)
        for column in spec.columns
    ]
    constraints: list[sa.SchemaItem] = [sa.PrimaryKeyConstraint(*spec.business_key)]
    constraints.extend(
        sa.ForeignKeyConstraint(list(fk.columns), [f"{fk.parent.target_table}.{name}" for name in fk.parent_columns])
        for fk in spec.foreign_keys
    )
    constraints.extend(
        sa.Index(
            f"uq_{spec.target_table}_{'_'.join(unique)}_live",
            *unique,
            unique=True,
            postgresql_where=sa.text(live()),
        )
        for unique in spec.unique
    )
    return sa.Table(
        spec.target_table,
        into,
        *columns,
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column(DELETED_AT, sa.DateTime(timezone=True)),
        sa.Column("sync_run_id", sa.BigInteger),
        *constraints,
        comment=spec.description,
    )
