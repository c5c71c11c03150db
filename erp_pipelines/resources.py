"""Dagster resources: the AS400 connection, the application database. Secrets come as `dg.EnvVar`."""

from __future__ import annotations

import os
from collections.abc import Mapping

import dagster as dg
import sqlalchemy as sa
from pydantic import Field

from erp_pipelines.app_db.engine import app_engine
from erp_pipelines.sources.as400.adapter import As400Source
from erp_pipelines.sources.as400.connection import DEFAULT_BATCH_ROWS, As400Settings
from erp_pipelines.sources.as400.sql import parse_whitelist
from erp_pipelines.sources.base import flag_setting, number_setting
from erp_pipelines.sources.legacy_4d.adapter import DEFAULT_OVERLAP_STAMPS, Legacy4DSource
from erp_pipelines.sources.legacy_4d.auth import DEFAULT_AUTHENTIFY_BODY
from erp_pipelines.sources.legacy_4d.client import Legacy4DClient
from erp_pipelines.sources.legacy_4d.session import SessionJar, default_session_file


class As400Resource(dg.ConfigurableResource):
    """Read-only ODBC access to the IBM i (or the sandbox stand-in), limited to whitelisted tables."""

    dsn: str | None = Field(default=None, description="ODBC data source name (AS400_DSN)")
    username: str = Field(description="Read-only user profile (AS400_USERNAME)")
    password: str = Field(description="Its password (AS400_PASSWORD); never logged", repr=False)
    database: str | None = Field(default=None, description="RDB name (AS400_DATABASE)")
    server: str | None = Field(default=None, description="Host name (AS400_SERVER)")
    port: int | None = Field(default=None, description="Port (AS400_PORT; the IBM i driver ignores it)")
    ssl: bool = Field(default=True, description="TLS (AS400_SSL); no plaintext fallback when on")
    allowed_tables: str = Field(description="Whitelist LIBRARY.TABLE,... (AS400_ALLOWED_TABLES)")
    odbc_driver: str = Field(default="IBM i Access ODBC Driver", description="AS400_ODBC_DRIVER")
    driver_profile: str = Field(default="ibmi", description="Keyword set: ibmi or postgresql")
    odbc_options: str = Field(default="", description="Extra ODBC keywords (AS400_ODBC_OPTIONS)")
    batch_rows: int = Field(default=DEFAULT_BATCH_ROWS, description="Rows per fetched Arrow batch (memory bound)")

    def settings(self) -> As400Settings:
        if self.driver_profile not in ("ibmi", "postgresql"):
            raise ValueError(f"AS400_DRIVER_PROFILE must be 'ibmi' or 'postgresql', not {self.driver_profile!r}")
        return As400Settings(
            username=self.username,
            password=self.password,
            allowed_tables=parse_whitelist(self.allowed_tables),
            dsn=self.dsn or None,
            server=self.server or None,
            port=self.port,
            database=self.database or None,
            ssl=self.ssl,
            driver=self.odbc_driver,
            profile=self.driver_profile,  # type: ignore[arg-type]
            extra_options=self.odbc_options,
            batch_rows=self.batch_rows,
        )

    def source(self) -> As400Source:
        return As400Source(self.settings())


class Legacy4DResource(dg.ConfigurableResource):
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
    batch_rows: int = Field(default=10_000, description="Entities per validated and loaded batch")
    auth_mode: str = Field(default="directory", description="LEGACY_API_AUTH: directory or authentify")
    authentify_body: str = Field(default=DEFAULT_AUTHENTIFY_BODY,
                                 description="LEGACY_API_AUTH_BODY: authentify() parameters, {username}/{password}")
    session_file: str = Field(default="", description="LEGACY_API_SESSION_FILE: where the session cookie is kept")
    overlap_stamps: int = Field(default=DEFAULT_OVERLAP_STAMPS,
                                description="LEGACY_SYNC_OVERLAP_STAMPS: stamps re-read below the watermark")

    def client(self) -> Legacy4DClient:
        if self.scheme not in ("http", "https"):
            raise ValueError(f"LEGACY_API_SCHEME must be http or https, not {self.scheme!r}")
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


class AppDatabaseResource(dg.ConfigurableResource):
    """The application's PostgreSQL database (SQLAlchemy 2, psycopg2)."""

    url: str = Field(description="APP_DATABASE_URL, postgresql+psycopg2://… (holds a password)", repr=False)

    def engine(self) -> sa.Engine:
        return app_engine(self.url)


def as400_resource(env: Mapping[str, str] | None = None, *, secrets_from_env_var: bool = True) -> As400Resource:
    """The AS400 resource configured from the integration's environment variables.

    With `secrets_from_env_var` the password stays a `dg.EnvVar` (resolved at launch, never shown in
    the UI); without it the value is read now, for code that runs outside Dagster.
    """
    settings = As400Settings.from_env(env)
    return As400Resource(
        dsn=settings.dsn,
        username=settings.username,
        password=dg.EnvVar("AS400_PASSWORD") if secrets_from_env_var else settings.password,
        database=settings.database,
        server=settings.server,
        port=settings.port,
        ssl=settings.ssl,
        allowed_tables=",".join(sorted(str(table) for table in settings.allowed_tables)),
        odbc_driver=settings.driver,
        driver_profile=settings.profile,
        odbc_options=settings.extra_options,
        batch_rows=settings.batch_rows,
    )


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


def app_database_resource(
    env: Mapping[str, str] | None = None, *, secrets_from_env_var: bool = True
) -> AppDatabaseResource:
    env = os.environ if env is None else env
    return AppDatabaseResource(
        url=dg.EnvVar("APP_DATABASE_URL") if secrets_from_env_var else env.get("APP_DATABASE_URL", "")
    )
