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

from erp_pipelines_tests.support.legacy_4d import RawRest, start_emulator
from erp_sandbox.legacy_4d.seed import seed_store
from erp_sandbox.legacy_4d.server import EmulatorServer
from erp_sandbox.legacy_4d.store import LegacyStore


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
