"""Alembic environment: migrations of the application database, from the catalog-derived metadata."""

from __future__ import annotations

import os

from alembic import context

from erp_pipelines.app_db.engine import PROJECT_SCHEMA, app_engine
from erp_pipelines.catalog import application_metadata
from erp_pipelines.migrations import project_tables_only

url = context.config.attributes.get("url") or os.environ.get("APP_DATABASE_URL", "")

with app_engine(url).connect() as connection:
    # The project's schema exists before the first migration, so every table it creates lands there (the
    # sessions' search_path puts it first). A database migrated before the schema existed has its version
    # table in `public`: it moves first, then migration 0008 moves the tables.
    connection.exec_driver_sql(f"create schema if not exists {PROJECT_SCHEMA}")
    connection.exec_driver_sql(
        f"do $$ begin if to_regclass('public.alembic_version') is not null "
        f"and to_regclass('{PROJECT_SCHEMA}.alembic_version') is null then "
        f"alter table public.alembic_version set schema {PROJECT_SCHEMA}; end if; end $$")
    connection.commit()
    metadata = application_metadata()
    context.configure(connection=connection, target_metadata=metadata, compare_type=True,
                      include_name=project_tables_only(set(metadata.tables)))
    with context.begin_transaction():
        context.run_migrations()
