"""Fixtures for tests against the 4D REST emulator: a real PostgreSQL store and real servers on free ports.

The store is ``TEST_LEGACY4D_STORE_URL`` (written by scripts/test) or else ``LEGACY4D_STORE_URL``; its
schema is rebuilt once per session and emptied before every test. Each test gets its own server, so
sessions, entity sets, faults and stats never leak between tests.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests

from erp_sandbox.legacy_4d.seed import seed_store
from erp_sandbox.legacy_4d.server import EmulatorServer
from erp_sandbox.legacy_4d.store import LegacyStore

USERNAME = "sync_user"
PASSWORD = "Tr0ub4dor&3-not-in-logs"
APP_NAME = "ERP"


class RawRest:
    """A cookie-keeping HTTP client that sends URLs exactly as written (to test 4D's URL rules)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.http = requests.Session()

    def login(self, username: str = USERNAME, password: str = PASSWORD) -> requests.Response:
        return self.http.post(f"{self.base_url}/rest/$directory/login",
                              headers={"username-4D": username, "password-4D": password}, timeout=10)

    def logout(self) -> requests.Response:
        return self.http.get(f"{self.base_url}/rest/$directory/logout", timeout=10)

    def get(self, path: str) -> requests.Response:
        return self.http.get(f"{self.base_url}{path}", timeout=30)

    def post(self, path: str, payload: Any = None) -> requests.Response:
        return self.http.post(f"{self.base_url}{path}", json=payload, timeout=30)

    def fault(self, kind: str, count: int = 1, path_contains: str = "", seconds: float = 0.0) -> None:
        response = requests.post(f"{self.base_url}/_emulator/faults", timeout=10, json={
            "kind": kind, "count": count, "path_contains": path_contains, "seconds": seconds})
        assert response.status_code == 201, response.text

    def stats(self) -> dict:
        return requests.get(f"{self.base_url}/_emulator/stats", timeout=10).json()


@pytest.fixture(autouse=True)
def legacy4d_session_file(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> str:
    """Where this test's "deployment" keeps its 4D session (LEGACY_API_SESSION_FILE): never the operator's."""
    path = str(tmp_path_factory.mktemp("legacy_4d_session") / "session.json")
    monkeypatch.setenv("LEGACY_API_SESSION_FILE", path)
    return path


@pytest.fixture(scope="session")
def legacy4d_store_url() -> str:
    url = os.environ.get("TEST_LEGACY4D_STORE_URL") or os.environ.get("LEGACY4D_STORE_URL")
    if not url:
        pytest.fail("set TEST_LEGACY4D_STORE_URL (or LEGACY4D_STORE_URL) to a PostgreSQL database for the emulator")
    return url


@pytest.fixture(scope="session")
def legacy4d_session_store(legacy4d_store_url: str) -> Iterator[LegacyStore]:
    store = LegacyStore(legacy4d_store_url, max_connections=4)
    store.reset()
    yield store
    store.close()


@pytest.fixture
def legacy4d_store(legacy4d_session_store: LegacyStore) -> LegacyStore:
    """An empty store (global stamp 1) for this test."""
    legacy4d_session_store.truncate()
    return legacy4d_session_store


@pytest.fixture
def legacy4d_seeded(legacy4d_store: LegacyStore) -> dict:
    """The store with 200 generated products (and related tables, ~5% bad records); returns the summary."""
    return seed_store(legacy4d_store.url, products=200, seed=7, bad_share=0.05)


def start_emulator(store_url: str, **overrides: Any) -> EmulatorServer:
    """An emulator on a free port, login required unless ``username=None`` (for fixtures of any scope).

    Strict where 4D's documentation is: plain attributes in ``$attributes`` are refused (the documented form is
    the path form), on top of the emulator's faithful defaults (sessions held until their timeout whatever
    logout does, guest sessions for cookie-less requests, ``__DeletedRecords`` with its documented attributes).
    """
    options: dict[str, Any] = {"licenses": 3, "app_name": APP_NAME, "username": USERNAME, "password": PASSWORD,
                               "ensure_schema": False, "plain_attributes_param": False}
    options.update(overrides)
    return EmulatorServer(store_url, port=0, **options).start()


@pytest.fixture
def make_legacy4d_server(legacy4d_store: LegacyStore) -> Iterator[Callable[..., EmulatorServer]]:
    """Start emulators on free ports (login required unless ``username=None``); all are stopped afterwards."""
    servers: list[EmulatorServer] = []

    def _make(**overrides: Any) -> EmulatorServer:
        server = start_emulator(legacy4d_store.url, **overrides)
        servers.append(server)
        return server

    yield _make
    for server in servers:
        server.stop()


@pytest.fixture
def legacy4d_server(make_legacy4d_server: Callable[..., EmulatorServer]) -> EmulatorServer:
    return make_legacy4d_server()


@pytest.fixture
def rest(legacy4d_server: EmulatorServer) -> RawRest:
    """A logged-in raw HTTP session on the default server."""
    client = RawRest(legacy4d_server.base_url)
    assert client.login().json() == {"result": True}
    return client
