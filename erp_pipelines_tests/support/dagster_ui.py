"""The running Dagster stack of the browser tests (address, environment, seeded sources, process logs) and how
its processes are waited for and stopped."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests
import sqlalchemy as sa

from erp_sandbox.as400.seed import SeedManifest

STARTUP_TIMEOUT = 180


@dataclass
class DagsterUi:
    """The running stack: the UI's address, the environment its processes got, the seeded sources."""

    base_url: str
    env: dict[str, str]
    app_engine: sa.Engine
    as400_manifest: SeedManifest
    legacy4d_summary: dict
    logs: dict[str, Path] = field(default_factory=dict)

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        response = requests.post(f"{self.base_url}/graphql", json={"query": query, "variables": variables or {}},
                                 timeout=60)
        response.raise_for_status()
        body = response.json()
        assert "errors" not in body, body["errors"]
        return body["data"]

    def log_tails(self, chars: int = 3000) -> str:
        return "\n".join(f"--- {name} ---\n{path.read_text(errors='replace')[-chars:]}"
                         for name, path in self.logs.items() if path.exists())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop_process_group(process: subprocess.Popen) -> None:
    """SIGTERM to the process group we started (webserver/daemon and their code servers, run workers)."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
    # children that outlived their parent (same group) go too
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)


def wait_for_server(ui: DagsterUi, webserver: subprocess.Popen) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        assert webserver.poll() is None, f"dagster-webserver exited\n{ui.log_tails()}"
        with contextlib.suppress(requests.RequestException):
            if requests.get(f"{ui.base_url}/server_info", timeout=5).ok:
                # the code location is loaded once the repository answers
                data = ui.graphql("{ workspaceOrError { ... on Workspace { locationEntries { name "
                                  "locationOrLoadError { __typename } } } } }")
                entries = data["workspaceOrError"]["locationEntries"]
                if entries and all(e["locationOrLoadError"] and
                                   e["locationOrLoadError"]["__typename"] == "RepositoryLocation" for e in entries):
                    return
        time.sleep(1)
    raise AssertionError(f"the Dagster webserver did not come up in {STARTUP_TIMEOUT}s\n{ui.log_tails()}")
