"""Alembic environment: migrations of the application database, from the catalog-derived metadata."""

from __future__ import annotations

import os

from alembic import context

from erp_pipelines.app_db.engine import app_engine
from erp_pipelines.catalog import application_metadata

url = context.config.attributes.get("url") or os.environ.get("APP_DATABASE_URL", "")

with app_engine(url).connect() as connection:
    context.configure(connection=connection, target_metadata=application_metadata(), compare_type=True)
    with context.begin_transaction():
        context.run_migrations()
