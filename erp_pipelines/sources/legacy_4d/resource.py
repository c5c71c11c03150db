"""The 4D source's settings as its Dagster resource (LEGACY_API_* and LEGACY_SYNC_* environment variables)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from erp_pipelines.core.draft import TableDraft
from erp_pipelines.core.spec import TableSpec
from erp_pipelines.sources.legacy_4d.adapter import DEFAULT_BATCH_ROWS, DEFAULT_OVERLAP_STAMPS, Legacy4DSource
from erp_pipelines.sources.legacy_4d.auth import DEFAULT_AUTHENTIFY_BODY
from erp_pipelines.sources.legacy_4d.client import Legacy4DClient
from erp_pipelines.sources.legacy_4d.scaffold import draft_dataclass
from erp_pipelines.sources.legacy_4d.session import SessionJar, default_session_file
from erp_pipelines.sources.system import SourceResource, setting


class Legacy4DResource(SourceResource):
    """The 4D ERP's REST server, read in the deployment's one REST session (one 4D client license), reused by
    every run, check and sensor tick. The session's cookie lives in `session_file` (a secret: mode 600); only
    its path is configuration."""

    host: str = setting("LEGACY_API_HOST", "Host name or address", "127.0.0.1")
    port: int = setting("LEGACY_API_PORT", "Port", 80)
    username: str | None = setting("LEGACY_API_USERNAME", "4D user", None)
    password: str | None = setting("LEGACY_API_PASSWORD", "Its password; never logged", None, secret=True)
    scheme: str = setting("LEGACY_API_SCHEME", "http or https", "http")
    verify_tls: bool = setting("LEGACY_API_VERIFY_TLS", "Verify the server certificate", True)
    timeout_seconds: float = setting("LEGACY_API_TIMEOUT", "Seconds per request", 30.0)
    page_size: int = setting("LEGACY_SYNC_BATCH_SIZE", "Entities per REST page", 1000)
    batch_rows: int = setting("LEGACY_SYNC_BATCH_ROWS", "Entities per validated and loaded batch", DEFAULT_BATCH_ROWS)
    auth_mode: str = setting("LEGACY_API_AUTH", "directory or authentify", "directory")
    authentify_body: str = setting("LEGACY_API_AUTH_BODY", "authentify() parameters, {username}/{password}",
                                   DEFAULT_AUTHENTIFY_BODY)
    session_file: str = setting("LEGACY_API_SESSION_FILE", "Where the session cookie is kept", "")
    overlap_stamps: int = setting("LEGACY_SYNC_OVERLAP_STAMPS", "Stamps re-read below the watermark",
                                  DEFAULT_OVERLAP_STAMPS)

    @classmethod
    def env_defaults(cls, env: Mapping[str, str]) -> dict[str, Any]:
        return {"session_file": str(default_session_file(env))}

    def client(self) -> Legacy4DClient:
        return Legacy4DClient(
            self.host,
            self.port,
            self.username or None,
            self.password or None,
            scheme=self.scheme,
            verify=self.verify_tls,
            timeout=self.timeout_seconds,
            page_size=self.page_size,
            auth_mode=self.auth_mode,
            authentify_template=self.authentify_body,
            jar=SessionJar(self.session_file or default_session_file(os.environ)),
        )

    def source(self) -> Legacy4DSource:
        return Legacy4DSource(self.client, batch_rows=self.batch_rows, overlap_stamps=self.overlap_stamps)

    def draft_table(self, name: str, key: Sequence[str] = ()) -> TableDraft:
        """Dataclass `name` described from `$catalog/{dataClass}` (sources/legacy_4d/scaffold.py)."""
        return draft_dataclass(self.source(), name, key)

    def probe(self, specs: list[TableSpec]) -> str:
        """Where and as whom, the dataclasses and their change tracking, and the licenses in use."""
        source = self.source()
        source.retry_refused_login = True  # an operator asking: try credentials the server refused before, once
        found = source.test_connection(specs)
        return f"{self.scheme}://{self.host}:{self.port} as {self.username}; {found}"

    def unconfigured_reason(self) -> str | None:
        """Not set up: LEGACY_API_HOST never given (its default, this machine, is a sandbox convenience)."""
        return None if "host" in self.model_fields_set else "LEGACY_API_HOST is not set"


def legacy_4d_resource(
    env: Mapping[str, str] | None = None, *, secrets_from_env_var: bool = True
) -> Legacy4DResource:
    """The resource as Dagster definitions use it: LEGACY_API_PASSWORD stays a `dg.EnvVar` unless told otherwise."""
    return Legacy4DResource.from_env(env, secrets_from_env_var=secrets_from_env_var)
