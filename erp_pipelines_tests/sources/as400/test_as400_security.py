"""Each read-only layer on its own, the whitelist before any connection, TLS, and no leaked secrets."""

from __future__ import annotations

import os
from dataclasses import replace

import pyodbc
import pytest

from erp_pipelines.catalog import get_spec
from erp_pipelines.catalog.spec import TableSpec
from erp_pipelines.resources import As400Resource
from erp_pipelines.sources.as400.adapter import As400Source
from erp_pipelines.sources.as400.connection import As400ConnectionError
from erp_pipelines.sources.as400.sql import parse_whitelist
from erp_pipelines.sources.base import SchemaDriftError, TableNotAllowedError

pytestmark = pytest.mark.integration

WRITE = 'DELETE FROM "PRODUCTLIB"."PRODUCTS"'


def test_driver_keyword_refuses_writes(as400: As400Resource) -> None:
    """psqlODBC's ReadOnly=1 (IBM i: CONNTYPE=2) stops a write before it reaches the server."""
    with as400.settings().connect() as connection, pytest.raises(pyodbc.Error, match=r"readonly"):
        connection.cursor().execute(WRITE)


def test_role_refuses_writes_without_the_driver_keyword(as400: As400Resource) -> None:
    """Even a connection string without ReadOnly=1 cannot write: the role is SELECT-only and read-only."""
    settings = as400.settings()
    text = settings.connection_string(with_credentials=True).replace("ReadOnly=1;", "")
    assert "ReadOnly" not in text
    connection = pyodbc.connect(text, autocommit=True)
    try:
        for statement in (WRITE, 'CREATE TABLE "PRODUCTLIB"."X" ("A" INTEGER)',
                          'UPDATE "PRODUCTLIB"."PRODUCTS" SET "SKU" = \'\''):
            with pytest.raises(pyodbc.Error, match=r"read-only transaction|permission denied"):
                connection.cursor().execute(statement)
        connection.cursor().execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE")
        with pytest.raises(pyodbc.Error, match=r"permission denied"):
            connection.cursor().execute(WRITE)
    finally:
        connection.close()


def test_table_outside_the_whitelist_is_refused_before_connecting(as400: As400Resource) -> None:
    # An unreachable server proves no connection is attempted: the refusal comes first.
    settings = replace(
        as400.settings(), dsn=None, server="192.0.2.1", port=1,
        allowed_tables=parse_whitelist("PRODUCTLIB.PRODUCTS"),
    )
    source = As400Source(settings)
    with (
        pytest.raises(TableNotAllowedError, match=r"INVENTORYLIB\.INVENTORY is not whitelisted"),
        source.extract(get_spec("product_stock"), None),
    ):
        pytest.fail("the extraction must not start")
    with pytest.raises(TableNotAllowedError):
        source.count_rows(get_spec("product_stock"))


def test_catalog_table_missing_from_the_whitelist_is_refused(as400: As400Resource) -> None:
    spec = replace(get_spec("product"), source_table="PRODUCTLIB.SECRETS")
    with pytest.raises(TableNotAllowedError, match=r"PRODUCTLIB\.SECRETS"):
        as400.source().count_rows(spec)


def test_session_is_encrypted(as400: As400Resource) -> None:
    with as400.settings().connect() as connection:
        encrypted = connection.cursor().execute("select ssl from pg_stat_ssl where pid = pg_backend_pid()").fetchone()
    assert encrypted[0] in (True, 1, "1")


def test_schema_drift_names_the_missing_columns(as400: As400Resource) -> None:
    spec: TableSpec = replace(get_spec("product"), extra_source_columns=("WEIGHT", "COLOR"))
    with pytest.raises(SchemaDriftError, match="WEIGHT, COLOR"):
        as400.source().check_columns(spec)


@pytest.mark.parametrize("change", [{"password": "wrong-password-123"}, {"port": 1}])
def test_connection_errors_carry_no_secret(as400: As400Resource, change: dict) -> None:
    fields = {"dsn": None, "server": "127.0.0.1", "port": int(os.environ["ERP_PG_PORT"]),
              "driver": "PostgreSQL Unicode"}
    settings = replace(as400.settings(), **(fields | change))
    with pytest.raises(As400ConnectionError) as err:
        As400Source(settings).test_connection()
    message = str(err.value)
    assert settings.password not in message
    assert os.environ["AS400_PASSWORD"] not in message
    assert "cannot connect to the AS400" in message


def test_resource_repr_hides_the_password(as400: As400Resource) -> None:
    assert os.environ["AS400_PASSWORD"] not in repr(as400)
    assert os.environ["AS400_PASSWORD"] not in repr(as400.settings())
