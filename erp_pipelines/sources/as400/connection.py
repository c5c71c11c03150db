"""Connection settings for the AS400: one code path for the IBM i Access ODBC Driver and psqlODBC.

The keyword profile is configuration, not code: production speaks to Db2 for i with `CONNTYPE=2`
(SELECT only), the sandbox to PostgreSQL with `ReadOnly=1`. Either way the connection is also opened
with pyodbc's `readonly=True`, and the account should be SELECT-only at the server.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

import pyodbc

from erp_pipelines.sources.as400.sql import QualifiedTable, parse_whitelist
from erp_pipelines.sources.base import SyncSourceError

DriverProfile = Literal["ibmi", "postgresql"]
# Rows per fetched Arrow batch: the memory bound of a sync (fetch buffers, decoded and staged copies).
DEFAULT_BATCH_ROWS = 20_000

# Read-only and extraction keywords per driver (see shared reference ibmi-odbc.md §1 and §8).
PROFILE_KEYWORDS: dict[DriverProfile, dict[str, str]] = {
    "ibmi": {
        "CONNTYPE": "2",
        "NAM": "0",
        "CMT": "1",
        "UNICODESQL": "1",
        "BLOCKFETCH": "1",
        "BLOCKSIZE": "4096",
        "COMPRESSION": "1",
        "DFT": "5",
        "TRANSLATE": "0",
        "TRIMCHAR": "0",
        "XDYNAMIC": "0",
    },
    "postgresql": {"ReadOnly": "1", "UseDeclareFetch": "1", "Fetch": "10000"},
}


class As400ConnectionError(SyncSourceError):
    """The AS400 could not be reached or refused the login; the message names no secret."""


def _odbc_value(value: str) -> str:
    """Braces a value when it holds characters with a meaning in connection strings."""
    if any(ch in value for ch in ";{}= ") or value != value.strip():
        return "{" + value.replace("}", "}}") + "}"
    return value


@dataclass(frozen=True)
class As400Settings:
    """Everything needed to open a read-only ODBC session to the AS400 (or its stand-in)."""

    username: str
    password: str = field(repr=False)
    allowed_tables: frozenset[QualifiedTable]
    dsn: str | None = None
    server: str | None = None
    port: int | None = None
    database: str | None = None
    ssl: bool = True
    driver: str = "IBM i Access ODBC Driver"
    profile: DriverProfile = "ibmi"
    extra_options: str = ""
    batch_rows: int = DEFAULT_BATCH_ROWS
    login_timeout_seconds: int = 30

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> As400Settings:
        """The AS400 integration's environment variables (AS400_*), read without Dagster."""
        env = os.environ if env is None else env
        profile = env.get("AS400_DRIVER_PROFILE", "ibmi")
        if profile not in ("ibmi", "postgresql"):
            raise ValueError(f"AS400_DRIVER_PROFILE must be 'ibmi' or 'postgresql', not {profile!r}")
        ssl = (env.get("AS400_SSL") or "true").strip().lower()
        if ssl not in {"true", "false", "1", "0", "yes", "no", "on", "off"}:
            raise ValueError(f"AS400_SSL={ssl!r} must be true or false")
        port = env.get("AS400_PORT")
        return cls(
            username=env.get("AS400_USERNAME", ""),
            password=env.get("AS400_PASSWORD", ""),
            allowed_tables=parse_whitelist(env.get("AS400_ALLOWED_TABLES", "")),
            dsn=env.get("AS400_DSN") or None,
            server=env.get("AS400_SERVER") or None,
            port=int(port) if port else None,
            database=env.get("AS400_DATABASE") or None,
            ssl=ssl in {"true", "1", "yes", "on"},
            driver=env.get("AS400_ODBC_DRIVER", "IBM i Access ODBC Driver"),
            profile=profile,  # type: ignore[arg-type]
            extra_options=env.get("AS400_ODBC_OPTIONS", ""),
            batch_rows=int(env.get("AS400_BATCH_ROWS", str(DEFAULT_BATCH_ROWS))),
        )

    def connection_string(self, *, with_credentials: bool = False) -> str:
        """ODBC keywords; the credentials are added only where a driver API cannot take them apart."""
        parts: dict[str, str] = {}
        if self.dsn:
            parts["DSN"] = self.dsn
        else:
            parts["DRIVER"] = "{" + self.driver + "}"
        if self.profile == "ibmi":
            if self.server:
                parts["SYSTEM"] = self.server
            if self.database:
                parts["DATABASE"] = self.database
            parts["SSL"] = "1" if self.ssl else "0"
        else:
            if self.server:
                parts["Servername"] = self.server
            if self.port:
                parts["Port"] = str(self.port)
            if self.database:
                parts["Database"] = self.database
            parts["SSLmode"] = "require" if self.ssl else "disable"
        parts.update(PROFILE_KEYWORDS[self.profile])
        for option in filter(None, (item.strip() for item in self.extra_options.split(";"))):
            key, _, value = option.partition("=")
            if key.strip().upper() in {"UID", "PWD", "USER", "PASSWORD"}:
                raise ValueError("AS400_ODBC_OPTIONS must not carry credentials; use AS400_USERNAME/PASSWORD")
            parts[key.strip()] = value.strip()
        if with_credentials:
            parts["UID"] = _odbc_value(self.username)
            parts["PWD"] = _odbc_value(self.password)
        return ";".join(f"{key}={value}" for key, value in parts.items())

    def redact(self, text: str) -> str:
        """Removes the password (and its ODBC-escaped form) from a message before it is shown."""
        for secret in {self.password, _odbc_value(self.password)}:
            if secret:
                text = text.replace(secret, "***")
        return text

    def describe(self) -> str:
        """Where this connects to, for messages and the UI (no secrets)."""
        target = f"DSN {self.dsn}" if self.dsn else f"{self.server or '?'}:{self.port or 'default'}"
        return f"{target} as {self.username} (ssl={'on' if self.ssl else 'off'}, driver profile {self.profile})"

    @contextmanager
    def connect(self) -> Iterator[pyodbc.Connection]:
        """A pyodbc connection in read-only access mode, autocommit so no transaction holds locks."""
        try:
            connection = pyodbc.connect(
                self.connection_string(with_credentials=True),
                readonly=True,
                autocommit=True,
                timeout=self.login_timeout_seconds,
            )
        except pyodbc.Error as exc:
            raise As400ConnectionError(
                f"cannot connect to the AS400 ({self.describe()}): {self.redact(str(exc))}"
            ) from None
        try:
            yield connection
        finally:
            connection.close()
