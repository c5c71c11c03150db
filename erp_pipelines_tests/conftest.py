"""Shared fixtures: the real sandbox PostgreSQL (test databases), the AS400 stand-in through ODBC.

scripts/test provisions everything and writes `.env`; the fixtures read it. The test databases
(`erp_app_test`, `as400_test`) are separate from the demo's, so running the tests never touches the
demo data.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

# The suite's catalog writes the project's own tables, whatever `.env` says for the demo (ERP_TARGET); the tests
# of the application's tables ask for them (`TableSpec.onto_application`). Set before the catalog is imported,
# and inherited by the CLI and Dagster processes the tests start.
os.environ["ERP_TARGET"] = "project"

import psycopg2
import pytest
import sqlalchemy as sa
from alembic import command

from erp_pipelines.app_db.engine import PROJECT_SCHEMA, app_engine
from erp_pipelines.migrations import alembic_config
from erp_pipelines.sources.as400.resource import As400Resource
from erp_pipelines_tests.support.django_app import DjangoApp, setup_orm
from erp_pipelines_tests.support.django_app import migrate as migrate_django
from erp_pipelines_tests.support.sandbox import ROOT, as400_test_resource, empty_app_database
from erp_sandbox.as400.seed import SeedManifest, seed_as400

pytest_plugins = ["erp_pipelines_tests.fixtures_legacy_4d"]

REQUIRED = ("TEST_APP_DATABASE_URL", "TEST_AS400_OWNER_URL", "TEST_AS400_DATABASE", "AS400_PASSWORD", "ODBCINI")


def _load_env_file() -> None:
    env_file = ROOT / ".env"
    if env_file.exists():
        for line in env_file.read_text().splitlines():
            if "=" in line and not line.lstrip().startswith("#"):
                key, value = line.split("=", 1)
                os.environ.setdefault(key.strip(), value.strip().strip("'"))


_load_env_file()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Integration tests need the provisioned sandbox: without it each one fails (never skips), naming what
    is missing; the other tests need no service and run anywhere (`pytest -m "not integration"`)."""
    if item.get_closest_marker("integration") is None:
        return
    missing = [name for name in REQUIRED if not os.environ.get(name)]
    if missing:
        pytest.fail(f"the sandbox is not provisioned ({', '.join(missing)} unset): run scripts/test", pytrace=False)


@pytest.fixture(scope="session")
def app_url() -> str:
    """The test application database, rebuilt from the migrations once per session."""
    url = os.environ["TEST_APP_DATABASE_URL"]
    with app_engine(url).begin() as connection:
        connection.exec_driver_sql(f"drop schema if exists {PROJECT_SCHEMA} cascade")
        connection.exec_driver_sql("drop schema if exists public cascade")  # the application's (Django) tables
        connection.exec_driver_sql("create schema public")
    command.upgrade(alembic_config(url), "head")
    return url


@pytest.fixture
def app_db(app_url: str) -> sa.Engine:
    """The application database, emptied before each test."""
    return empty_app_database(app_url)


@pytest.fixture(scope="session")
def django_session(app_url: str) -> DjangoApp:
    """The sandbox Django application migrated into the test application database (once per session)."""
    url = os.environ["TEST_DJANGO_DATABASE_URL"]
    app = migrate_django(url, app_url)
    setup_orm(url)
    return app


@pytest.fixture
def django_app(django_session: DjangoApp, app_db: sa.Engine) -> DjangoApp:
    """The application's tables, emptied before each test (with the project's, by `app_db`)."""
    django_session.empty()
    return django_session


@pytest.fixture(scope="session")
def as400_owner_url() -> str:
    return os.environ["TEST_AS400_OWNER_URL"]


@pytest.fixture
def seed(as400_owner_url: str) -> Callable[..., SeedManifest]:
    """Regenerates the AS400 stand-in's test database with the given size and bad share."""

    def _seed(**kwargs: object) -> SeedManifest:
        return seed_as400(as400_owner_url, **kwargs)

    return _seed


@pytest.fixture
def as400_source_sql(as400_owner_url: str) -> Iterator[Callable[[str], None]]:
    """Runs SQL on the stand-in as its owner (the ERP's own writes, never the sync's)."""
    connection = psycopg2.connect(as400_owner_url)
    connection.autocommit = True

    def _run(statement: str) -> None:
        with connection.cursor() as cursor:
            cursor.execute(statement)

    yield _run
    connection.close()


@pytest.fixture
def as400() -> As400Resource:
    """The AS400 resource as production configures it, pointed at the stand-in's test database."""
    return as400_test_resource()
