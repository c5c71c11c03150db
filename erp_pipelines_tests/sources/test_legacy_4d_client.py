"""The 4D REST client against the real emulator (real HTTP, real PostgreSQL)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator

import pytest
import requests

from erp_pipelines.sources.legacy_4d.client import Legacy4DClient
from erp_pipelines.sources.legacy_4d.errors import (
    Legacy4DAuthError,
    Legacy4DError,
    Legacy4DLicenseError,
    Legacy4DNotFoundError,
)
from erp_pipelines.sources.legacy_4d.session import SessionJar
from erp_pipelines_tests.support.legacy_4d import PASSWORD, USERNAME, RawRest
from erp_sandbox.legacy_4d.server import EmulatorServer
from erp_sandbox.legacy_4d.store import LegacyStore

pytestmark = pytest.mark.integration

ClientFactory = Callable[..., Legacy4DClient]


@pytest.fixture
def make_client() -> Iterator[ClientFactory]:
    clients: list[Legacy4DClient] = []

    def _make(server: EmulatorServer, **overrides: object) -> Legacy4DClient:
        options: dict = {"username": USERNAME, "password": PASSWORD, "backoff_seconds": 0.01, "page_size": 50,
                         "timeout": 10.0}
        options.update(overrides)
        client = Legacy4DClient(server.host, server.port, **options)
        clients.append(client)
        return client

    yield _make
    for client in clients:
        client.close()


@pytest.fixture
def client(legacy4d_server: EmulatorServer, make_client: ClientFactory) -> Legacy4DClient:
    client = make_client(legacy4d_server)
    client.connect()
    return client


def stats(server: EmulatorServer) -> dict:
    return RawRest(server.base_url).stats()


def advance_clock(server: EmulatorServer, seconds: float) -> None:
    """Move the emulator's clock: sessions idle longer than their timeout close, as on a real server."""
    assert requests.post(f"{server.base_url}/_emulator/clock", json={"advance": seconds}, timeout=10).ok


def requests_to(server: EmulatorServer, fragment: str) -> list[dict]:
    return [r for r in stats(server)["last_requests"] if fragment in r["target"]]


# --- reading ------------------------------------------------------------------------------------------


def test_query_count_get_record_and_catalog(client: Legacy4DClient, legacy4d_seeded: dict) -> None:
    assert {dc["name"] for dc in client.catalog()["dataClasses"]} >= {"Products", "Orders", "__DeletedRecords"}
    everything = client.query_table("Products", fields=["ProductID", "SKU"])
    assert len(everything) == 200  # more than 4D's default page of 100
    assert [r["ProductID"] for r in everything] == list(range(1, 201))
    page = client.query_table("Products", limit=5, offset=10, order_by="ProductID desc")
    assert [r["ProductID"] for r in page] == [190, 189, 188, 187, 186]
    assert client.count("Products") == 200
    assert client.count("Products", [("Price", "<", 0)]) == legacy4d_seeded["bad"]["negative_price"]
    record = client.get_record("Products", 7, fields=["SKU"])
    assert record["__KEY"] == "7" and "SKU" in record and "Price" not in record
    with pytest.raises(Legacy4DNotFoundError) as missing:
        client.get_record("Products", 999_999)
    assert missing.value.status == 404 and missing.value.err_codes == [1543]
    with pytest.raises(Legacy4DNotFoundError) as unknown:
        client.query_table("Nope")
    assert unknown.value.err_codes == [1800]


def test_dict_filters_and_special_characters_round_trip(client: Legacy4DClient, legacy4d_store: LegacyStore) -> None:
    names = ["O'Reilly & Sons", 'Say "hi"', "C++ Tool", "100% = sure", "Grüße/Straße?x=1#y", "a+b c"]
    legacy4d_store.insert("Products", [{"ProductID": i, "ProductName": n} for i, n in enumerate(names, start=1)])
    for i, name in enumerate(names, start=1):
        assert [r["ProductID"] for r in client.query_table("Products", {"ProductName": name})] == [i], name
    assert client.query_table("Products", [("ProductName", "begin", "c+")])[0]["ProductID"] == 3
    assert client.count("Products", [("ProductName", "=", None)]) == 0
    assert client.count("Products", [("ProductID", "in", [1, 3, 99])]) == 2


def test_iter_pages_is_stable_while_records_change(client: Legacy4DClient, legacy4d_seeded: dict,
                                                   legacy4d_store: LegacyStore) -> None:
    seen: list[int] = []
    for number, page in enumerate(client.iter_pages("Products", key="ProductID", page_size=40,
                                                    fields=["ProductName", "Price"])):
        seen.extend(r["ProductID"] for r in page)
        if number == 1:
            legacy4d_store.delete("Products", [5, 150])         # one already read, one not yet read
            legacy4d_store.update("Products", 160, {"Price": 1.25})
            legacy4d_store.insert("Products", [{"ProductName": "late arrival"}])  # gets key 201
            legacy4d_store.insert("Products", [{"ProductID": 3_000, "ProductName": "far key"}])
        if number == 2:
            legacy4d_store.delete("Products", [121])            # first row of the next page
    assert len(seen) == len(set(seen)), "no entity may be read twice"
    expected = (set(range(1, 201)) - {150, 121}) | {201, 3_000}
    assert set(seen) == expected
    assert seen == sorted(seen)


def test_iter_pages_with_filters_and_counting(client: Legacy4DClient, legacy4d_seeded: dict) -> None:
    pages = list(client.iter_pages("Products", key="ProductID", filters=[("Price", ">=", 0)], page_size=30))
    total = client.count("Products", [("Price", ">=", 0)])
    assert sum(len(p) for p in pages) == total
    assert all(len(p) == 30 for p in pages[:-1])
    assert all(r["Price"] >= 0 for p in pages for r in p)


def test_global_stamp_and_deleted_records(legacy4d_server: EmulatorServer, make_client: ClientFactory,
                                          legacy4d_seeded: dict, legacy4d_store: LegacyStore) -> None:
    client = make_client(legacy4d_server, page_size=3)  # deletions span several pages of __Stamp
    stamp = client.global_stamp("Products", "ProductID")
    assert stamp == legacy4d_store.global_stamp() == legacy4d_seeded["global_stamp"]
    legacy4d_store.delete("Products", [10, 11, 13, 14, 15, 16, 17])
    legacy4d_store.delete("Customers", [1])
    legacy4d_store.update("Products", 12, {"Price": 3.5})
    assert client.global_stamp("Customers", "CustomerID") == stamp + 9
    deleted = client.deleted_records("Products", stamp)
    assert sorted(r["__PrimaryKey"] for r in deleted) == ["10", "11", "13", "14", "15", "16", "17"]
    assert all(r["__Stamp"] >= stamp for r in deleted)
    assert client.deleted_records("Products", stamp + 7) == []
    pages = requests_to(legacy4d_server, "/rest/__DeletedRecords")
    assert all("ID" not in r["target"].replace("__PrimaryKey", "").replace("IDs", "") for r in pages)
    assert all('$orderby="__Stamp"' in r["target"] for r in pages)
    changed = client.query_table("Products", [("__GlobalStamp", ">=", stamp)])
    assert [r["ProductID"] for r in changed] == [12]


# --- sessions, licenses, retries ----------------------------------------------------------------------


def test_clients_of_a_deployment_share_one_session_that_outlives_logout(
    make_legacy4d_server: Callable[..., EmulatorServer], make_client: ClientFactory, legacy4d_seeded: dict,
) -> None:
    """Two clients on one jar are one deployment: one login, one license. Another deployment finds none free,
    and neither disconnect nor logout frees it (v18-v21 document no logout): only the inactivity timeout."""
    server = make_legacy4d_server(licenses=1)
    jar = SessionJar()
    first, second = make_client(server, jar=jar), make_client(server, jar=jar)
    for client in (first, second, first):
        assert client.count("Products") == 200
    assert len(requests_to(server, "$directory/login")) == 1
    assert stats(server)["sessions_opened"] == 1
    elsewhere = make_client(server)
    with pytest.raises(Legacy4DLicenseError) as exhausted:
        elsewhere.connect()
    error = exhausted.value
    assert error.status == 402 and error.err_codes == [1823]
    assert "exhausted" in str(error) and "Retry the run later" in str(error) and "inactivity timeout" in str(error)
    first.disconnect()
    second.logout()
    assert stats(server)["licenses_in_use"] == 1
    with pytest.raises(Legacy4DLicenseError):
        make_client(server).connect()
    advance_clock(server, 3601)
    assert stats(server)["licenses_in_use"] == 0
    assert make_client(server).count("Products") == 200


def test_402_is_not_retried(legacy4d_server: EmulatorServer, client: Legacy4DClient, legacy4d_seeded: dict) -> None:
    RawRest(legacy4d_server.base_url).fault("exhaust_licenses", count=-1, path_contains="/rest/Products")
    with pytest.raises(Legacy4DLicenseError):
        client.count("Products")
    assert len(requests_to(legacy4d_server, "/rest/Products")) == 1


def test_expired_session_logs_in_again(
    make_legacy4d_server: Callable[..., EmulatorServer], make_client: ClientFactory, legacy4d_seeded: dict,
) -> None:
    server = make_legacy4d_server(session_timeout=0.5)
    client = make_client(server)
    client.connect()
    assert client.count("Products") == 200
    time.sleep(0.8)
    assert client.count("Products") == 200
    logins = requests_to(server, "$directory/login")
    assert [r["status"] for r in logins] == [200, 200]
    assert [r["status"] for r in requests_to(server, "/rest/Products")] == [200, 401, 200]
    RawRest(server.base_url).fault("drop_session", path_contains="/rest/Products")
    assert client.count("Products") == 200
    assert stats(server)["sessions_open"] == 1


def test_server_errors_are_retried_then_succeed(legacy4d_server: EmulatorServer, client: Legacy4DClient,
                                                legacy4d_seeded: dict) -> None:
    control = RawRest(legacy4d_server.base_url)
    control.fault("http_500", count=2, path_contains="/rest/Products")
    control.fault("close_connection", count=1, path_contains="/rest/Customers")
    assert client.count("Products") == 200
    assert [r["status"] for r in requests_to(legacy4d_server, "/rest/Products")] == [500, 500, 200]
    assert client.count("Customers") == legacy4d_seeded["counts"]["Customers"]


def test_a_login_that_times_out_is_not_retried(legacy4d_server: EmulatorServer, make_client: ClientFactory,
                                               legacy4d_seeded: dict) -> None:
    """The server answers the login late and opens the session anyway: one attempt holds one license, where
    retrying would have left one more session (license) per attempt until the sessions time out."""
    RawRest(legacy4d_server.base_url).fault("delay", count=-1, path_contains="$directory/login", seconds=1.0)
    client = make_client(legacy4d_server, timeout=0.3, max_retries=3)
    with pytest.raises(Legacy4DError, match=r"did not answer POST /rest/\$directory/login within 0.3 s; not retried"):
        client.connect()
    time.sleep(1.2)  # the late login completes on the server
    assert len(requests_to(legacy4d_server, "$directory/login")) == 1
    assert stats(legacy4d_server)["sessions_open"] == 1


def test_persistent_server_errors_give_a_clear_error(legacy4d_server: EmulatorServer, make_client: ClientFactory,
                                                     legacy4d_seeded: dict) -> None:
    client = make_client(legacy4d_server, max_retries=2)
    client.connect()
    RawRest(legacy4d_server.base_url).fault("http_500", count=-1, path_contains="/rest/Products")
    with pytest.raises(Legacy4DError) as caught:
        client.query_table("Products", limit=1)
    error = caught.value
    assert error.status == 500 and error.err_codes == []
    assert "HTTP 500" in str(error) and "3 attempt(s)" in str(error) and "/rest/Products" in str(error)
    assert len(requests_to(legacy4d_server, "/rest/Products")) == 3


def test_a_4d_processing_error_is_not_retried(legacy4d_server: EmulatorServer, client: Legacy4DClient,
                                              legacy4d_seeded: dict) -> None:
    """HTTP 500 with 4D's dbmg error stack (here 1280, a placeholder of the wrong type) is deterministic: the
    same request fails the same way, so it is sent once (DOC REST_requests: 500 = error processing it)."""
    with pytest.raises(Legacy4DError) as caught:
        client.query_table("Products", [("Price", "=", "not a number")], limit=1)
    assert caught.value.status == 500 and caught.value.err_codes == [1280]
    assert "1 attempt(s)" in str(caught.value)
    assert len(requests_to(legacy4d_server, "/rest/Products")) == 1


# --- filter safety (injection payloads: erp_pipelines_tests/security/test_injection_payloads.py) ----------


@pytest.mark.parametrize(
    "condition",
    [("ProductID; DROP TABLE x", "=", 1), ("Price", "= 1 OR 1", 1), ("Price", ";", 1), ("a b", "=", 1),
     ("Price", "<", None), ("ProductID", "IN", "1,2")],
)
def test_bad_attribute_or_operator_never_reaches_the_server(
    legacy4d_server: EmulatorServer, client: Legacy4DClient, condition: tuple, legacy4d_store: LegacyStore,
) -> None:
    before = stats(legacy4d_server)["requests_served"]
    with pytest.raises(ValueError, match=r"invalid|unsupported|null|IN"):
        client.query_table("Products", [condition])
    with pytest.raises(ValueError, match="invalid"):
        client.query_table("Products; x")
    assert stats(legacy4d_server)["requests_served"] == before


# --- secrets -----------------------------------------------------------------------------------------


def test_password_never_appears_in_errors_repr_or_logs(
    make_legacy4d_server: Callable[..., EmulatorServer], make_client: ClientFactory, legacy4d_seeded: dict,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    server = make_legacy4d_server(licenses=2)  # the refused login holds one of them
    wrong = make_client(server, password=PASSWORD + "-wrong")
    texts: list[str] = [repr(wrong)]
    with pytest.raises(Legacy4DAuthError) as denied:
        wrong.connect()
    assert denied.value.status == 401 and denied.value.err_codes == [1822]
    good = make_client(server)
    good.connect()
    other = make_client(server)
    with pytest.raises(Legacy4DLicenseError) as exhausted:
        other.connect()
    RawRest(server.base_url).fault("http_500", count=-1)
    with pytest.raises(Legacy4DError) as failed:
        good.count("Products")
    for error in (denied.value, exhausted.value, failed.value):
        texts += [str(error), repr(error), *error.messages, str(error.__cause__), str(error.__context__)]
    texts += [repr(good), caplog.text]
    for text in texts:
        assert PASSWORD not in text
