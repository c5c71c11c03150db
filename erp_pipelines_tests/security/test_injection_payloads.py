"""Injection payloads through every door a value has into a source: AS400 whitelist and catalog names, spec
columns, connection settings, watermarks and keys; 4D names, settings, `$filter` values, keys, watermarks.

Each payload is either refused with an error naming the setting or record, or bound — and that is checked
against what actually reached the source: the PostgreSQL wire tap in front of the AS400 stand-in (see
support/security.py) and the 4D emulator's request log. A bound payload travels only as a Bind value (AS400)
or inside `$params` (4D), never in SQL text, a URL path or `$filter`; nothing but reads reached either source.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import replace

import psycopg2
import pytest
import sqlalchemy as sa

from erp_pipelines.catalog import get_spec
from erp_pipelines.core.source import InvalidWatermarkError, SchemaDriftError, SettingError
from erp_pipelines.core.spec import TableSpec
from erp_pipelines.engine.sync import run_sync
from erp_pipelines.sources.as400.adapter import As400Source
from erp_pipelines.sources.as400.connection import As400ConfigError, As400ConnectionError, As400Settings
from erp_pipelines.sources.as400.resource import As400Resource
from erp_pipelines.sources.as400.sql import UnsafeSqlError
from erp_pipelines.sources.legacy_4d.adapter import Legacy4DSource
from erp_pipelines.sources.legacy_4d.client import Legacy4DClient
from erp_pipelines.sources.legacy_4d.errors import Legacy4DAuthError
from erp_pipelines.sources.legacy_4d.resource import legacy_4d_resource
from erp_pipelines_tests.support.legacy_4d import PASSWORD, USERNAME
from erp_pipelines_tests.support.security import PAYLOAD_IDS, PAYLOADS, PgProxy, refusal, request_log, through
from erp_sandbox.legacy_4d.server import EmulatorServer
from erp_sandbox.legacy_4d.store import LegacyStore

pytestmark = pytest.mark.integration

PRODUCT = get_spec("product")
STOCK = get_spec("product_stock")
CUSTOMER = get_spec("erp_customer")


def mark(index: int, payload: str) -> str:
    """The payload behind a marker no generated SQL or URL contains, so any appearance is unambiguous."""
    return f"Zq{index:02d}{payload}"


# --- AS400: names ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("payload", PAYLOADS, ids=PAYLOAD_IDS)
def test_as400_names_refused_before_any_connection(
    payload: str, pg_proxy: PgProxy, tapped_as400: As400Settings
) -> None:
    env = {**os.environ, "AS400_DATABASE": os.environ["TEST_AS400_DATABASE"]}
    for entry in (f"PRODUCTLIB.{payload}", f"{payload}.PRODUCTS", f"PRODUCTLIB.PRODUCTS,{payload}"):
        with pytest.raises(UnsafeSqlError, match="AS400_ALLOWED_TABLES"):
            As400Settings.from_env({**env, "AS400_ALLOWED_TABLES": entry})
    column = PRODUCT.columns[1]
    bad_specs = [
        replace(PRODUCT, source_table=f"PRODUCTLIB.{payload}"),
        replace(PRODUCT, source_table=f"{payload}.PRODUCTS"),
        replace(PRODUCT, columns=(PRODUCT.columns[0], replace(column, source=(payload,)), *PRODUCT.columns[2:])),
        replace(PRODUCT, extra_source_columns=(payload,)),
    ]
    source = As400Source(tapped_as400)
    for spec in bad_specs:
        with pytest.raises(UnsafeSqlError, match="catalog entry 'product'"), source.extract(spec, None):
            pytest.fail("the extraction must not start")
        with pytest.raises(UnsafeSqlError, match="catalog entry 'product'"), source.extract_keys(spec, [("K",)]):
            pytest.fail("the replay must not start")
        with pytest.raises(UnsafeSqlError, match="catalog entry 'product'"):
            source.count_rows(spec)
        with pytest.raises(UnsafeSqlError, match="catalog entry 'product'"):
            source.change_markers([PRODUCT, spec])
    assert pg_proxy.sessions == [], "a refused name must be refused before any connection"


# --- AS400: connection settings ----------------------------------------------------------------------------


AS400_KEYWORD_SETTINGS = ("AS400_SERVER", "AS400_DATABASE", "AS400_DSN", "AS400_ODBC_DRIVER", "AS400_USERNAME",
                          "AS400_PORT", "AS400_BATCH_ROWS")


def _as400_env(proxy: PgProxy, **changes: str) -> dict[str, str]:
    return {**os.environ, "AS400_DATABASE": os.environ["TEST_AS400_DATABASE"], "AS400_SERVER": "127.0.0.1",
            "AS400_PORT": str(proxy.port), "AS400_SSL": "false", **changes}


@pytest.mark.parametrize("payload", PAYLOADS, ids=PAYLOAD_IDS)
def test_as400_settings_are_refused_or_arrive_whole(payload: str, pg_proxy: PgProxy) -> None:
    """`;`, `{}` or `=` could end a connection-string keyword and start another (ReadOnly=0, SSLmode=disable,
    another server): such values are refused naming the setting. Any other value is accepted and reaches
    the server as the whole value of its one keyword, seen in the startup packet the server received."""
    settings_to_try = [(name, {"AS400_DSN": "", name: payload}) for name in AS400_KEYWORD_SETTINGS] + [
        ("AS400_ODBC_OPTIONS", {"AS400_ODBC_OPTIONS": f"Fetch={payload}"}),
        ("AS400_ODBC_OPTIONS", {"AS400_ODBC_OPTIONS": f"{payload}=1"}),
        ("AS400_ODBC_OPTIONS", {"AS400_ODBC_OPTIONS": f"Fetch=100;{payload}"}),
    ]
    for name, change in settings_to_try:
        before = len(pg_proxy.sessions)
        env = _as400_env(pg_proxy, **change)
        refused = refusal(lambda env=env: As400Settings.from_env(env), SettingError)
        if refused is not None:
            assert name in str(refused)
            assert len(pg_proxy.sessions) == before
            continue
        settings = As400Settings.from_env(env)
        assert name in ("AS400_DATABASE", "AS400_USERNAME", "AS400_DSN", "AS400_ODBC_DRIVER"), (name, payload)
        with pytest.raises(As400ConnectionError) as failed:
            As400Source(settings).test_connection()
        assert os.environ["AS400_PASSWORD"] not in str(failed.value)
        if name in ("AS400_DSN", "AS400_ODBC_DRIVER"):  # looked up as one name, which does not exist
            assert len(pg_proxy.sessions) == before
            continue
        (session,) = pg_proxy.sessions[before:]
        expected = {"user": os.environ["AS400_USERNAME"], "database": os.environ["TEST_AS400_DATABASE"]}
        expected["database" if name == "AS400_DATABASE" else "user"] = payload
        assert {k: session.startup.get(k) for k in ("user", "database")} == expected
        assert set(session.startup) <= {"user", "database", "application_name", "client_encoding"}
        assert not session.tls_requested
    pg_proxy.assert_only_reads()


def test_as400_password_reaches_the_driver_whole(as400: As400Resource, password_trap: PgProxy) -> None:
    """The password is the one value that may hold `;` or braces: braced, the driver decodes it back.
    The trap asks for it in clear text, so the test sees exactly what the driver sent."""
    passwords = [mark(i, p) for i, p in enumerate(PAYLOADS) if not any(c in p for c in "\x00\r\n")]
    for password in passwords:
        with pytest.raises(As400ConnectionError) as refused:
            As400Source(through(password_trap, as400, password=password)).test_connection()
        assert password not in str(refused.value)
    assert [session.password for session in password_trap.sessions] == passwords


def test_as400_password_with_control_characters_is_refused_without_showing_it(as400: As400Resource) -> None:
    for password in ("line\r\nbreak-secret-1", "nul\x00secret-2", "tab\tsecret-3"):
        with pytest.raises(As400ConfigError, match="AS400_PASSWORD") as refused:
            as400.replaced(password=password)
        assert password not in str(refused.value) and "secret" not in str(refused.value)


# --- AS400: watermarks and keys ------------------------------------------------------------------------------


@pytest.mark.parametrize("payload", PAYLOADS, ids=PAYLOAD_IDS)
def test_as400_watermark_refused_before_any_connection(
    payload: str, pg_proxy: PgProxy, tapped_as400: As400Settings
) -> None:
    """Refused naming the entity and sync_watermark — unless Python reads it as a timestamp (`...00:00:1` is
    a fraction of a second): then only integers computed from it reach the stand-in."""
    source = As400Source(tapped_as400)
    for watermark in ({"changed_at": payload}, {"changed_at": f"2025-01-01T00:00:00{payload}"}, {"other": payload}):
        refused = refusal(lambda w=watermark: _read_all(source, PRODUCT, w), InvalidWatermarkError)
        if refused is None:
            literals = [v for text in pg_proxy.statement_texts() for v in re.findall(r"'([^']*)'", text)]
            assert {v for v in literals if not v.isdigit()} <= {"ISO", "lo", "d"}  # the driver's own
            continue
        assert re.match(r"product: the stored watermark .*\(sync_watermark\)", str(refused))
    catalog = {"PRODUCTLIB", "PRODUCTS", "*FILE", "QSQJRN"}  # the file's and its journal's names, never the payload
    assert all(v is None or v.isdigit() or v in catalog for v in pg_proxy.bound_values())
    assert pg_proxy.sessions == [] or payload == ":1"
    pg_proxy.assert_only_reads()


def test_a_tampered_watermark_fails_the_run_naming_it(app_db: sa.Engine, tapped_as400: As400Settings,
                                                      pg_proxy: PgProxy) -> None:
    payload = PAYLOADS[0]
    with app_db.begin() as connection:
        connection.execute(sa.text("insert into sync_watermark (entity, source_system, value) "
                                   "values ('product', 'as400', cast(:v as jsonb))"),
                           {"v": json.dumps({"changed_at": payload})})
    with pytest.raises(InvalidWatermarkError):
        run_sync(PRODUCT, As400Source(tapped_as400), app_db, mode="incremental")
    with app_db.connect() as connection:
        status, message = connection.execute(sa.text("select status, error_message from sync_run")).one()
    assert status == "FAILED" and "InvalidWatermarkError" in message and "sync_watermark" in message
    assert pg_proxy.sessions == []


@pytest.fixture
def marked_rows(as400_owner_url: str) -> Iterator[Callable[[str, list[tuple[str, ...]]], None]]:
    """Inserts rows keyed by marked payloads into the stand-in (as its owner); removed afterwards."""
    connection = psycopg2.connect(as400_owner_url)
    connection.autocommit = True
    where = {"PRODUCTLIB.PRODUCTS": '"ITEMNO"', "INVENTORYLIB.INVENTORY": '"ITEMNO"'}

    def _insert(table: str, keys: list[tuple[str, ...]]) -> None:
        library, name = table.split(".")
        columns = '"ITEMNO"' if len(keys[0]) == 1 else '"ITEMNO", "WHSE"'
        with connection.cursor() as cursor:
            for key in keys:
                marks = ", ".join(["%s"] * len(key))
                cursor.execute(f'insert into "{library}"."{name}" ({columns}) values ({marks})', key)

    yield _insert
    with connection.cursor() as cursor:
        for table, column in where.items():
            library, name = table.split(".")
            cursor.execute(f"delete from \"{library}\".\"{name}\" where {column} like 'Zq%%'")
    connection.close()


def _read_all(source: As400Source, spec: TableSpec, since: dict | None) -> int:
    with source.extract(spec, since) as extraction:
        return sum(batch.num_rows for batch in extraction.batches())


def _rows(source: As400Source, spec: TableSpec, keys: list[tuple[str, ...]]) -> list[tuple[str, ...]]:
    with source.extract_keys(spec, keys) as extraction:
        batches = list(extraction.batches())
    names = spec.source_key_columns
    return sorted(tuple(str(b.column(n)[i].as_py()).rstrip() for n in names) for b in batches
                  for i in range(b.num_rows))


def test_as400_replay_keys_travel_as_bound_values(
    pg_proxy: PgProxy, tapped_as400: As400Settings, marked_rows: Callable[[str, list[tuple[str, ...]]], None]
) -> None:
    """Every payload as a quarantined key: one replay statement, each key a bound value, the rows that
    exist (keys of at most 15 characters fit ITEMNO) found exactly, no payload in any SQL text."""
    keys = [mark(i, p) for i, p in enumerate(PAYLOADS) if "\x00" not in p]
    fitting = [key for key in keys if len(key) <= 15]
    marked_rows("PRODUCTLIB.PRODUCTS", [(key,) for key in fitting])
    source = As400Source(tapped_as400)
    assert _rows(source, PRODUCT, [(key,) for key in keys]) == sorted((key,) for key in fitting)
    stock_keys = [(mark(i, "a"), whse) for i, whse in enumerate(["b|c", "'--", ";)"])]
    marked_rows("INVENTORYLIB.INVENTORY", stock_keys)
    assert _rows(source, STOCK, stock_keys) == sorted(stock_keys)
    bound = pg_proxy.bound_values()
    assert set(keys) <= set(bound)
    assert {value for key in stock_keys for value in key} <= set(bound)
    for text in pg_proxy.statement_texts():
        assert "Zq" not in text, f"a payload reached the stand-in as SQL: {text!r}"
    pg_proxy.assert_only_reads()


def test_as400_key_with_nul_refused_before_any_connection(pg_proxy: PgProxy, tapped_as400: As400Settings) -> None:
    with pytest.raises(UnsafeSqlError, match="NUL"), As400Source(tapped_as400).extract_keys(PRODUCT, [("a\x00b",)]):
        pytest.fail("the replay must not start")
    assert pg_proxy.sessions == []


# --- 4D --------------------------------------------------------------------------------------------------------


def _requests_with(server: EmulatorServer, marker: str) -> list[tuple[str, dict]]:
    """Where a marker shows up in what the emulator received: (part, request) for path and each parameter."""
    found = []
    for entry in request_log(server):
        if marker in entry["path"]:
            found.append(("path", entry))
        for name, value in entry["query"].items():
            if marker in value:
                found.append((name, entry))
    return found


def _client_factory(server: EmulatorServer) -> Callable[[], Legacy4DClient]:
    return lambda: Legacy4DClient(server.host, server.port, USERNAME, PASSWORD, max_retries=0, timeout=10.0)


@pytest.mark.parametrize("payload", PAYLOADS, ids=PAYLOAD_IDS)
def test_4d_filter_values_travel_only_in_params(
    payload: str, legacy4d_server: EmulatorServer, legacy4d_store: LegacyStore
) -> None:
    value = mark(PAYLOADS.index(payload), payload)
    if "\x00" in value:
        legacy4d_store.insert("Products", [{"ProductID": 1, "ProductName": "x"}])
    else:
        legacy4d_store.insert("Products", [{"ProductID": 1, "ProductName": value},
                                           {"ProductID": 2, "ProductName": "x"}])
    stamp, count = legacy4d_store.global_stamp(), legacy4d_store.count("Products")
    with Legacy4DClient(legacy4d_server.host, legacy4d_server.port, USERNAME, PASSWORD, max_retries=0) as client:
        if "\x00" in value:
            with pytest.raises(ValueError, match="NUL"):
                client.query_table("Products", [("ProductName", "===", value)])
            assert _requests_with(legacy4d_server, "Zq") == []
            return
        assert [r["ProductID"] for r in client.query_table("Products", [("ProductName", "===", value)])] == [1]
        assert client.count("Products", [("ProductName", "in", [value, "nothing"])]) == 1
        assert client.count("Products", [("ProductName", "!==", value)]) == 1
    seen = _requests_with(legacy4d_server, value[:4])
    assert {part for part, _ in seen} == {"$params"}
    received = sorted((e["query"]["$filter"], json.loads(e["query"]["$params"])) for _, e in seen)
    assert received == [("ProductName !== :1", [value]), ("ProductName === :1", [value]),
                        ("ProductName IN :1", [[value, "nothing"]])]
    assert (legacy4d_store.global_stamp(), legacy4d_store.count("Products")) == (stamp, count)


@pytest.mark.parametrize("payload", PAYLOADS, ids=PAYLOAD_IDS)
def test_4d_keys_and_watermarks_never_leave_params(
    payload: str, legacy4d_server: EmulatorServer, legacy4d_store: LegacyStore, legacy4d_seeded: dict
) -> None:
    """A quarantined key that is not a whole number cannot exist under 4D's numeric primary key: the replay
    does not ask for it (it is never sent, so it cannot reach a filter), finds the real key beside it, and
    a tampered watermark is refused before any request."""
    value = mark(PAYLOADS.index(payload), payload)
    stamp = legacy4d_store.global_stamp()
    source = Legacy4DSource(_client_factory(legacy4d_server))
    with pytest.raises(InvalidWatermarkError, match="erp_customer: the stored watermark"), \
            source.extract(CUSTOMER, {"global_stamp": value}):
        pytest.fail("the extraction must not start")
    with source.extract_keys(CUSTOMER, [value, "7"]) as replay:
        found = [key for batch in replay.batches() for key in batch.column("CustomerID").to_pylist()]
    assert found == [7]
    assert _requests_with(legacy4d_server, "Zq") == []
    assert legacy4d_store.global_stamp() == stamp


@pytest.mark.parametrize("payload", PAYLOADS, ids=PAYLOAD_IDS)
def test_4d_names_refused_before_they_reach_a_url(payload: str, legacy4d_server: EmulatorServer,
                                                  legacy4d_store: LegacyStore) -> None:
    source = Legacy4DSource(_client_factory(legacy4d_server))
    value = mark(PAYLOADS.index(payload), payload)
    for spec in (replace(CUSTOMER, source_table=value), replace(CUSTOMER, extra_source_columns=(value,))):
        with pytest.raises(SchemaDriftError, match=r"'erp_customer' spec|not exposed"), \
                source.extract(spec, None):
            pytest.fail("the extraction must not start")
    with pytest.raises(ValueError, match="invalid 4D dataclass name"):
        source.count_rows(replace(CUSTOMER, source_table=value))
    assert _requests_with(legacy4d_server, "Zq") == []


@pytest.mark.parametrize("payload", PAYLOADS, ids=PAYLOAD_IDS)
def test_4d_settings_are_refused_or_arrive_whole(
    payload: str, make_legacy4d_server: Callable[..., EmulatorServer]
) -> None:
    """A host or port that is not one is refused (it would become part of every URL: a path, a query with
    `$method=delete`, a fragment); credentials that cannot be a header value are refused; any other user
    or password logs in against an emulator configured with exactly that value."""
    server = make_legacy4d_server()
    base = {"LEGACY_API_HOST": server.host, "LEGACY_API_PORT": str(server.port),
            "LEGACY_API_USERNAME": USERNAME, "LEGACY_API_PASSWORD": PASSWORD}
    for name in ("LEGACY_API_HOST", "LEGACY_API_PORT", "LEGACY_API_SCHEME", "LEGACY_API_VERIFY_TLS",
                 "LEGACY_API_TIMEOUT", "LEGACY_SYNC_BATCH_SIZE"):
        with pytest.raises(ValueError, match=name):
            legacy_4d_resource({**base, name: payload}, secrets_from_env_var=False).client()
    for name in ("LEGACY_API_USERNAME", "LEGACY_API_PASSWORD"):
        env = {**base, name: payload}
        refused = refusal(lambda env=env: legacy_4d_resource(env, secrets_from_env_var=False).client(), ValueError)
        if refused is not None:
            assert name in str(refused)
            assert name == "LEGACY_API_USERNAME" or payload not in str(refused)
            continue
        with pytest.raises(Legacy4DAuthError):
            legacy_4d_resource(env, secrets_from_env_var=False).client().connect()
        exact = make_legacy4d_server(username=env["LEGACY_API_USERNAME"], password=env["LEGACY_API_PASSWORD"])
        with legacy_4d_resource({**env, "LEGACY_API_PORT": str(exact.port)}, secrets_from_env_var=False).client():
            pass
        assert [e["path"] for e in request_log(exact)] == ["/rest/$directory/login"]  # no logout: 4D v18+ has none
    assert all(entry["path"].startswith("/rest/$directory/") for entry in request_log(server))
