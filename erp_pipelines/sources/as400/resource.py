"""The AS400 source's settings as its Dagster resource (AS400_* environment variables)."""

from __future__ import annotations

from collections.abc import Mapping

import dagster as dg
from pydantic import Field

from erp_pipelines.core.spec import TableSpec
from erp_pipelines.sources.as400.adapter import As400Source
from erp_pipelines.sources.as400.connection import DEFAULT_BATCH_ROWS, As400Settings
from erp_pipelines.sources.as400.sql import parse_whitelist
from erp_pipelines.sources.system import SourceResource


class As400Resource(SourceResource):
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

    def probe(self, specs: list[TableSpec]) -> str:
        """Where and as whom, which tables are readable, and what a DBA checks before the first sync."""
        adapter = self.source()
        report = adapter.connection_report(specs)
        readable = [spec.entity for spec in specs if adapter.count_rows(spec) >= 0]
        return "\n  ".join([f"{adapter.settings.describe()}; readable: {', '.join(readable)}", *report])


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
