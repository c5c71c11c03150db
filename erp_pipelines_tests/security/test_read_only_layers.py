"""Read-only access, one layer at a time, and the whitelist before any connection.

AS400 layers, outermost first: our SQL guard (`guard_select`), the driver keyword (psqlODBC `ReadOnly=1`,
IBM i `CONNTYPE=2`), the SELECT-only role, and the role's read-only default transaction. Each test takes
the others away (or shows on the wire that they were never reached) so each layer is seen refusing writes
on its own. The 4D client has no write verb at all: a whole sync, incremental run and replay send nothing
but GETs and the login POST, seen in the emulator's request log.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pyodbc
import pytest
import sqlalchemy as sa

from erp_pipelines.catalog import get_spec, specs_for
from erp_pipelines.core.source import TableNotAllowedError
from erp_pipelines.engine.sync import run_sync
from erp_pipelines.sources.as400.adapter import As400Source
from erp_pipelines.sources.as400.connection import As400Settings
from erp_pipelines.sources.as400.resource import As400Resource
from erp_pipelines.sources.legacy_4d.resource import Legacy4DResource
from erp_pipelines_tests.support.legacy_4d import PASSWORD, USERNAME
from erp_pipelines_tests.support.security import WRITES, WRITES_PAST_THE_DRIVER, PgProxy, request_log
from erp_sandbox.legacy_4d.server import EmulatorServer
from erp_sandbox.legacy_4d.store import LegacyStore

pytestmark = pytest.mark.integration

TABLES = ['"PRODUCTLIB"."PRODUCTS"', '"PRODUCTLIB"."MEASUREMENTS"', '"PRODUCTLIB"."PRICING"',
          '"INVENTORYLIB"."INVENTORY"']
def _without_driver_keyword(settings: As400Settings) -> pyodbc.Connection:
    text = settings.connection_string(with_credentials=True, bind_on_server=True).replace("ReadOnly=1;", "")
    assert "ReadOnly" not in text
    return pyodbc.connect(text, autocommit=True)


def test_driver_keyword_alone_refuses_writes_before_the_server(pg_proxy: PgProxy, tapped_as400: As400Settings) -> None:
    """ReadOnly=1 refuses a write in the driver: the tap shows the server never received it. Writes whose
    first word is not on the driver's list pass it and are refused by the server's read-only transaction."""
    with tapped_as400.connect() as connection:
        for statement in WRITES:
            with pytest.raises(pyodbc.Error, match=r"readonly, only select statements are allowed"):
                connection.cursor().execute(statement)
        for statement in WRITES_PAST_THE_DRIVER:
            with pytest.raises(pyodbc.Error, match=r"in a read-only transaction"):
                connection.cursor().execute(statement)
    received = pg_proxy.statement_texts()
    assert not set(WRITES) & set(received), "the driver let a plain write through"
    assert set(WRITES_PAST_THE_DRIVER) <= set(received)


def test_role_alone_refuses_writes(as400: As400Resource) -> None:
    """No driver keyword and the read-only default switched off for the session: the role's privileges
    still refuse every write on every whitelisted table and every DDL in its libraries."""
    connection = _without_driver_keyword(as400)
    try:
        cursor = connection.cursor()
        cursor.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE")
        assert cursor.execute("show default_transaction_read_only").fetchone()[0] == "off"
        for table in TABLES:
            for statement in (f"DELETE FROM {table}", f'UPDATE {table} SET "ITEMNO" = "ITEMNO"',
                              f'INSERT INTO {table} ("ITEMNO") VALUES (\'X\')', f"TRUNCATE {table}"):
                with pytest.raises(pyodbc.Error, match=r"permission denied for table"):
                    cursor.execute(statement)
        for library in ("PRODUCTLIB", "INVENTORYLIB"):
            with pytest.raises(pyodbc.Error, match=r"permission denied for schema"):
                cursor.execute(f'CREATE TABLE "{library}"."X" ("A" INTEGER)')
    finally:
        connection.close()


def test_read_only_default_transaction_alone_refuses_writes(as400: As400Resource) -> None:
    """No driver keyword, and a write the role is allowed (a temporary table): the read-only default
    transaction alone refuses it — the same statement succeeds once the session turns the default off."""
    connection = _without_driver_keyword(as400)
    try:
        cursor = connection.cursor()
        assert cursor.execute("show default_transaction_read_only").fetchone()[0] == "on"
        with pytest.raises(pyodbc.Error, match=r"cannot execute CREATE TABLE in a read-only transaction"):
            cursor.execute("CREATE TEMPORARY TABLE erp_probe (a integer)")
        cursor.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE")
        cursor.execute("CREATE TEMPORARY TABLE erp_probe (a integer)")
        assert cursor.execute("select count(*) from erp_probe").fetchone()[0] == 0
    finally:
        connection.close()


def test_whitelist_refuses_before_any_connection(pg_proxy: PgProxy, tapped_as400: As400Settings) -> None:
    """A catalog table missing from AS400_ALLOWED_TABLES, and a catalog entry naming a table outside it,
    are refused by every entry point of the adapter before a session is opened (the tap sees none)."""
    narrow = As400Source(tapped_as400.replaced(allowed_tables="PRODUCTLIB.PRODUCTS"))
    full = As400Source(tapped_as400)
    cases = [(narrow, get_spec("product_stock"), r"INVENTORYLIB\.INVENTORY is not whitelisted"),
             (full, replace(get_spec("product"), source_table="PRODUCTLIB.SECRETS"), r"PRODUCTLIB\.SECRETS")]
    for source, spec, named in cases:
        entry_points: list[Callable[[], object]] = [
            lambda s=source, t=spec: s.count_rows(t),
            lambda s=source, t=spec: s.check_columns(t),
            lambda s=source, t=spec: s.change_markers([get_spec("product"), t]),
        ]
        for call in entry_points:
            with pytest.raises(TableNotAllowedError, match=named):
                call()
        with pytest.raises(TableNotAllowedError, match=r"AS400_ALLOWED_TABLES allows"), source.extract(spec, None):
            pytest.fail("the extraction must not start")
        with pytest.raises(TableNotAllowedError, match=named), source.extract_keys(spec, [("ITM000000001", "WH1")]):
            pytest.fail("the replay must not start")
    assert pg_proxy.sessions == []


def test_4d_sync_sends_no_write(legacy4d_seeded: dict, legacy4d_server: EmulatorServer,
                                legacy4d_store: LegacyStore, app_db: sa.Engine) -> None:
    """Full, incremental (with deletions) and replay runs of every 4D table, counts and change markers:
    only GETs and the login POST, no `$method`, no request body; the store's stamp never moves."""
    resource = Legacy4DResource(host=legacy4d_server.host, port=legacy4d_server.port, username=USERNAME,
                                password=PASSWORD, page_size=40)
    source = resource.source()
    specs = specs_for("legacy_4d")
    for spec in specs:
        run_sync(spec, source, app_db, mode="full", max_rejected_share=1.0)
    legacy4d_store.update("Orders", 1, {"Status": "CANCELLED"})
    legacy4d_store.delete("BillOfMaterials", [1])
    stamp = legacy4d_store.global_stamp()
    reports = [run_sync(spec, source, app_db, mode="incremental", max_rejected_share=1.0) for spec in specs]
    assert sum(report.deleted for report in reports) >= 1
    with app_db.connect() as connection:
        quarantined = set(connection.execute(sa.text("select distinct entity from sync_error")).scalars())
    assert quarantined, "the seed's bad records make the replay path run too"
    for spec in specs:
        if spec.entity in quarantined:
            run_sync(spec, source, app_db, mode="replay", max_rejected_share=1.0)
        source.count_rows(spec)
    source.change_markers(specs)
    log = request_log(legacy4d_server)
    assert len(log) > 50
    assert {(entry["method"], entry["path"]) for entry in log if entry["method"] != "GET"} == {
        ("POST", "/rest/$directory/login")}
    assert not [entry for entry in log if "$method" in entry["query"] or entry["body_bytes"]]
    assert legacy4d_store.global_stamp() == stamp

