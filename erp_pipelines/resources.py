"""The application database resource. Source systems' resources live in their packages (`sources/<name>/`)."""

from __future__ import annotations

import os
from collections.abc import Mapping

import dagster as dg
import sqlalchemy as sa
from pydantic import Field

from erp_pipelines.app_db.engine import app_engine


class AppDatabaseResource(dg.ConfigurableResource):
    """The application's PostgreSQL database (SQLAlchemy 2, psycopg2)."""

    url: str = Field(description="APP_DATABASE_URL, postgresql+psycopg2://… (holds a password)", repr=False)

    def engine(self) -> sa.Engine:
        return app_engine(self.url)


def app_database_resource(
    env: Mapping[str, str] | None = None, *, secrets_from_env_var: bool = True
) -> AppDatabaseResource:
    env = os.environ if env is None else env
    return AppDatabaseResource(
        url=dg.EnvVar("APP_DATABASE_URL") if secrets_from_env_var else env.get("APP_DATABASE_URL", "")
    )
