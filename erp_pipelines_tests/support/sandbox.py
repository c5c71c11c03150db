"""The provisioned sandbox as the tests see it: where the project lives, an operator's environment pointed at
the test databases, an emptied application database and the AS400 resource on the stand-in's test database."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import sqlalchemy as sa

from erp_pipelines.app_db.engine import app_engine
from erp_pipelines.catalog import application_metadata
from erp_pipelines.sources.as400.resource import As400Resource, as400_resource
from erp_pipelines_tests.support.legacy_4d import PASSWORD, USERNAME

ROOT = Path(__file__).resolve().parents[2]


def operator_env(folder: Path, app_url: str, legacy_api_port: int) -> dict[str, str]:
    """An operator's shell pointed at the test databases, the given 4D emulator and a fresh DAGSTER_HOME
    (PostgreSQL storage) under `folder`."""
    home = folder / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "dagster.yaml", home / "dagster.yaml")
    return {
        **os.environ,
        "APP_DATABASE_URL": app_url,
        "AS400_DATABASE": os.environ["TEST_AS400_DATABASE"],
        "DAGSTER_HOME": str(home),
        "DAGSTER_PG_DB": os.environ["TEST_DAGSTER_PG_DB"],
        "LEGACY_API_PORT": str(legacy_api_port),
        "LEGACY_API_USERNAME": USERNAME,
        "LEGACY_API_PASSWORD": PASSWORD,
        "ERP_LOG_DIR": str(folder / "logs"),
        "DAGSTER_DISABLE_TELEMETRY": "1",
    }


def empty_app_database(url: str) -> sa.Engine:
    """The application database with every table emptied (for fixtures of any scope)."""
    engine = app_engine(url)
    names = ", ".join(f'"{table.name}"' for table in application_metadata().sorted_tables)
    with engine.begin() as connection:
        connection.exec_driver_sql(f"truncate {names} restart identity cascade")
    return engine


def as400_test_resource() -> As400Resource:
    """The AS400 resource as production configures it, pointed at the stand-in's test database."""
    env = dict(os.environ, AS400_DATABASE=os.environ["TEST_AS400_DATABASE"])
    return as400_resource(env, secrets_from_env_var=False)
