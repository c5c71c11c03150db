"""The 4D source's settings as its Dagster resource (LEGACY_API_* and LEGACY_SYNC_* environment variables)."""

from __future__ import annotations

import os
from collections.abc import Mapping

import dagster as dg
from pydantic import Field

from erp_pipelines.core.source import flag_setting, number_setting
from erp_pipelines.core.spec import TableSpec
from erp_pipelines.sources.legacy_4d.adapter import DEFAULT_BATCH_ROWS, DEFAULT_OVERLAP_STAMPS, Legacy4DSource
from erp_pipelines.sources.legacy_4d.auth import DEFAULT_AUTHENTIFY_BODY
from erp_pipelines.sources.legacy_4d.client import Legacy4DClient
from erp_pipelines.sources.legacy_4d.session import SessionJar, default_session_file
from erp_pipelines.sources.system import SourceResource


class Legacy4DResource(SourceResource):
    """The 4D ERP's REST server, read in the deployment's one REST session (one 4D client license), reused by
    every run, check and sensor tick. The session's cookie lives in `session_file` (a secret: mode 600); only
    its path is configuration."""

    host: str = Field(description="LEGACY_API_HOST")
    port: int = Field(default=80, description="LEGACY_API_PORT")
    username: str | None = Field(default=None, description="LEGACY_API_USERNAME")
    password: str | None = Field(default=None, description="LEGACY_API_PASSWORD; never logged", repr=False)
    scheme: str = Field(default="http", description="http or https (LEGACY_API_SCHEME)")
    verify_tls: bool = Field(default=True, description="Verify the server certificate (LEGACY_API_VERIFY_TLS)")
    timeout_seconds: float = Field(default=30.0, description="LEGACY_API_TIMEOUT")
    page_size: int = Field(default=1000, description="Entities per REST page (LEGACY_SYNC_BATCH_SIZE)")
    batch_rows: int = Field(default=DEFAULT_BATCH_ROWS, description="Entities per validated and loaded batch")
    auth_mode: str = Field(default="directory", description="LEGACY_API_AUTH: directory or authentify")
    authentify_body: str = Field(default=DEFAULT_AUTHENTIFY_BODY,
                                 description="LEGACY_API_AUTH_BODY: authentify() parameters, {username}/{password}")
    session_file: str = Field(default="", description="LEGACY_API_SESSION_FILE: where the session cookie is kept")
    overlap_stamps: int = Field(default=DEFAULT_OVERLAP_STAMPS,
                                description="LEGACY_SYNC_OVERLAP_STAMPS: stamps re-read below the watermark")

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

    def probe(self, specs: list[TableSpec]) -> str:
        """Where and as whom, the dataclasses and their change tracking, and the licenses in use."""
        source = self.source()
        source.retry_refused_login = True  # an operator asking: try credentials the server refused before, once
        found = source.test_connection(specs)
        return f"{self.scheme}://{self.host}:{self.port} as {self.username}; {found}"


def legacy_4d_resource(
    env: Mapping[str, str] | None = None, *, secrets_from_env_var: bool = True
) -> Legacy4DResource:
    """The 4D resource configured from the legacy design's LEGACY_API_* variables."""
    env = os.environ if env is None else env
    return Legacy4DResource(
        host=env.get("LEGACY_API_HOST", "127.0.0.1"),
        port=number_setting(env, "LEGACY_API_PORT", "80"),  # type: ignore[arg-type]
        username=env.get("LEGACY_API_USERNAME") or None,
        password=dg.EnvVar("LEGACY_API_PASSWORD") if secrets_from_env_var else env.get("LEGACY_API_PASSWORD"),
        scheme=env.get("LEGACY_API_SCHEME", "http"),
        verify_tls=flag_setting(env, "LEGACY_API_VERIFY_TLS", True),
        timeout_seconds=number_setting(env, "LEGACY_API_TIMEOUT", "30", float),  # type: ignore[arg-type]
        page_size=number_setting(env, "LEGACY_SYNC_BATCH_SIZE", "1000"),  # type: ignore[arg-type]
        auth_mode=(env.get("LEGACY_API_AUTH") or "directory").strip(),
        authentify_body=env.get("LEGACY_API_AUTH_BODY") or DEFAULT_AUTHENTIFY_BODY,
        session_file=str(default_session_file(env)),
        overlap_stamps=number_setting(env, "LEGACY_SYNC_OVERLAP_STAMPS", str(DEFAULT_OVERLAP_STAMPS)),  # type: ignore[arg-type]
    )
