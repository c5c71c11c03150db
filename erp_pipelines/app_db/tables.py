"""SQLAlchemy table definitions of the application database, derived from the catalog.

The catalog is the single source of truth for the synced tables; Alembic migrations are generated from
this metadata and a test checks they never drift apart.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

from erp_pipelines.catalog import CATALOG
from erp_pipelines.catalog.spec import TableSpec

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

AUDIT_COLUMNS = ("synced_at", "deleted_at", "sync_run_id")


def _target_table(spec: TableSpec) -> sa.Table:
    columns = [
        sa.Column(column.target, column.sql_type, nullable=column.nullable, comment=column.description or None)
        for column in spec.columns
    ]
    constraints: list[sa.SchemaItem] = [sa.PrimaryKeyConstraint(*spec.business_key)]
    for fk in spec.foreign_keys:
        parent = next(s for s in CATALOG if s.entity == fk.parent)
        constraints.append(
            sa.ForeignKeyConstraint(
                list(fk.columns), [f"{parent.target_table}.{name}" for name in fk.parent_columns]
            )
        )
    constraints.extend(
        sa.Index(
            f"uq_{spec.target_table}_{'_'.join(unique)}_live",
            *unique,
            unique=True,
            postgresql_where=sa.text("deleted_at is null"),
        )
        for unique in spec.unique
    )
    return sa.Table(
        spec.target_table,
        metadata,
        *columns,
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("deleted_at", sa.DateTime(timezone=True)),
        sa.Column("sync_run_id", sa.BigInteger),
        *constraints,
        comment=spec.description,
    )


TARGET_TABLES: dict[str, sa.Table] = {spec.entity: _target_table(spec) for spec in CATALOG}
