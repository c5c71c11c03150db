"""The 4D emulator's test credentials, a raw REST client that sends URLs as written, and an emulator on a free
port (for fixtures of any scope)."""

from __future__ import annotations

from typing import Any

import requests

from erp_sandbox.legacy_4d.server import EmulatorServer

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
