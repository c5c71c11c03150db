"""Connection settings for the AS400: one code path for the IBM i Access ODBC Driver and psqlODBC.

The keyword profile is configuration, not code: production speaks to Db2 for i with `CONNTYPE=2`
(SELECT only), the sandbox to PostgreSQL with `ReadOnly=1`. Either way the connection is also opened
with pyodbc's `readonly=True`, and the account should be SELECT-only at the server.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar, Literal

import dagster as dg
import pyodbc
from arrow_odbc import TextEncoding

from erp_pipelines.core.source import SettingError, SourceAuthenticationError, SyncSourceError
from erp_pipelines.sources.as400.sql import QualifiedTable, parse_whitelist
from erp_pipelines.sources.system import EnvSettings, setting

DriverProfile = Literal["ibmi", "postgresql"]
# Rows per fetched Arrow batch: the memory bound of a sync (fetch buffers, decoded and staged copies).
DEFAULT_BATCH_ROWS = 20_000
DEFAULT_BATCH_BYTES = 16 << 20
"""The transit buffer arrow-odbc allocates per batch is capped at this many bytes, in addition to the row cap
(arrow-odbc `OdbcReaderBuilder::with_max_bytes_per_batch`, docs.rs/arrow-odbc; the Python default is 512 MiB):
a narrow file keeps its 20,000 rows per batch, a wide master file gets fewer. Measured on the benchmark's
150-field file, fetch only, 40,000 rows: 20,000 rows per batch peaked at 652-661 MB, 16 MiB (2,666 rows) at
389 MB, in the same or less time."""

# Read-only and extraction keywords per driver (see shared reference ibmi-odbc.md §1 and §8, and the IBM i
# Access "Connection string keywords" pages, rzaik connectkeywords, cited per keyword below).
PROFILE_KEYWORDS: dict[DriverProfile, dict[str, str]] = {
    "ibmi": {
        # 2 = read-only: SELECT statements only (Server properties, rzaikconnstrkeywordsservprop).
        "CONNTYPE": "2",
        # 0 = SQL naming: LIB.FILE, every name qualified (Server properties).
        "NAM": "0",
        # Isolation *CS (read committed): CMT=1 is the default isolation, and it applies to autocommit only
        # with TRUEAUTOCOMMIT=1. "If TRUEAUTOCOMMIT is not set ... The default behavior will run autocommit
        # using the *NONE isolation level" (IBM i Access "Isolation level considerations", rzaikcommitcontrol),
        # and pyodbc and arrow-odbc both connect in autocommit. *NONE would read rows another job has
        # changed and not committed, so a sync could load a row that job later rolls back. The price of *CS:
        # a read waits for a row locked by an uncommitted change, up to the file's record wait time, then
        # fails with SQL0913, which is retried as transient. README "The driver profile, and why" has more.
        "CMT": "1",
        "TRUEAUTOCOMMIT": "1",
        # The client code page for narrow (SQL_C_CHAR) data: 1208 = UTF-8, whatever the process locale says
        # (IBM staff in IBM/node-odbc #46, IBM/nodejs-itoolkit #327). Text payloads are read as UTF-16 anyway
        # (TEXT_ENCODING below); this covers the catalog strings pyodbc reads narrow.
        "CCSID": "1208",
        # Hexadecimal sort sequence, pinned: a language sort sequence changes what = and ORDER BY mean on CHAR
        # columns and keeps the optimizer from ordered index use ("Using indexes and sort sequence with
        # ordering", rzajq). Replay and key narrowing rely on = meaning equal bytes.
        "SORTTYPE": "0",
        "UNICODESQL": "1",
        "BLOCKFETCH": "1",
        "BLOCKSIZE": "4096",
        "COMPRESSION": "1",
        "DFT": "5",
        # CCSID 65535 (FOR BIT DATA) character data arrives as binary; decoded per column (EbcdicText).
        "TRANSLATE": "0",
        "TRIMCHAR": "0",
        "XDYNAMIC": "0",
    },
    # ByteaAsLongVarBinary=0: bytea (the stand-in's CHAR FOR BIT DATA) comes back bounded, as on IBM i.
    # ConnSettings pins the client encoding as CCSID=1208 does on IBM i: psqlODBC's ANSI driver would
    # otherwise deliver text in whatever client encoding the DSN or PGCLIENTENCODING names.
    "postgresql": {
        "ReadOnly": "1", "UseDeclareFetch": "1", "Fetch": "10000", "ByteaAsLongVarBinary": "0",
        "ConnSettings": "{SET client_encoding TO 'UTF8'}",
    },
}  # fmt: skip
# How arrow-odbc transfers text. UTF-16 (wide) "ODBC defines the encoding to be always UTF-16", so nothing
# depends on a client code page (arrow-odbc TextEncoding docs); IBM's driver converts to UTF-16 itself.
# psqlODBC's ANSI driver cannot (SQLGetData SQL_C_WCHAR: "07006 Received an unsupported type"), so the
# stand-in reads narrow text in the client encoding pinned above.
TEXT_ENCODING: dict[DriverProfile, TextEncoding] = {"ibmi": TextEncoding.UTF16, "postgresql": TextEncoding.UTF8}
# What the session's isolation is, as test-connection reports it.
ISOLATION: dict[DriverProfile, str] = {
    "ibmi": "*CS (read committed): CMT=1 with TRUEAUTOCOMMIT=1",
    "postgresql": "read committed (PostgreSQL default; the stand-in)",
}
# For statements whose parameters carry values: psqlODBC's declare/fetch cursor would write the values
# into the SQL text itself, so these run without it and the server receives them bound ($1, $2, ...).
# IBM i's driver always binds at the server.
SERVER_BINDING_KEYWORDS: dict[DriverProfile, dict[str, str]] = {
    "ibmi": {},
    "postgresql": {"UseDeclareFetch": "0", "UseServerSidePrepare": "1"},
}
# What AS400_ODBC_OPTIONS may tune. The target, TLS, read-only mode, naming, translation and session
# SQL keywords are the code's or the AS400_* settings', so an option can never turn a safeguard off.
TUNABLE_KEYWORDS: dict[DriverProfile, frozenset[str]] = {
    "ibmi": frozenset({
        "BLOCKFETCH", "BLOCKSIZE", "COMPRESSION", "LAZYCLOSE", "PREFETCH", "MAXFIELDLEN", "QUERYTIMEOUT",
        "MAXDECPREC", "MAXDECSCALE", "MINDIVSCALE",
    }),
    "postgresql": frozenset({
        "Fetch", "UseDeclareFetch", "MaxVarcharSize", "MaxLongVarcharSize", "UnknownSizes", "KeepaliveTime",
        "KeepaliveInterval",
    }),
}  # fmt: skip
# Keywords that change what the data means or how it is read, pinned by the profile and refused as options
# with the reason: an operator reaching for them needs to know what they would break.
PINNED_KEYWORDS: dict[DriverProfile, dict[str, str]] = {
    "ibmi": {
        **dict.fromkeys(
            ("SORTTYPE", "SORTSEQUENCE", "LANGUAGEID", "SORTTABLE", "SORTWEIGHT"),
            "the sort sequence is pinned to hexadecimal (SORTTYPE=0): another one changes what = and ORDER BY "
            "mean on CHAR columns, so replayed keys and key ranges would match other rows",
        ),
        **dict.fromkeys(("CMT", "TRUEAUTOCOMMIT"), "the isolation is pinned to *CS (CMT=1, TRUEAUTOCOMMIT=1)"),
        "CCSID": "the client code page is pinned to UTF-8 (CCSID=1208)",
        "TRANSLATE": "the translation is pinned off (TRANSLATE=0): CCSID 65535 columns are decoded per column "
        "(EbcdicText)",
    },
    "postgresql": {"ConnSettings": "the client encoding is pinned to UTF8"},
}
# Settings written into the connection string as keyword values, by attribute.
KEYWORD_SETTINGS = {
    "dsn": "AS400_DSN",
    "server": "AS400_SERVER",
    "database": "AS400_DATABASE",
    "odbc_driver": "AS400_ODBC_DRIVER",
    "username": "AS400_USERNAME",
}
# A keyword value holding one of these could end its keyword and start another one.
_CONNECTION_STRING_SYNTAX = re.compile(r"[;{}\[\]=\x00-\x1f\x7f]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_HOST = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.:-]{0,252}")
_OPTION_VALUE = re.compile(r"[A-Za-z0-9_.-]*")
_CREDENTIAL_KEYWORDS = frozenset({"UID", "PWD", "USER", "PASSWORD"})
# Driver messages of a refused sign-on: SQLSTATE 28000/28P01, PostgreSQL's text, IBM i's security CWBSY*.
_AUTHENTICATION_FAILURE = re.compile(r"\b28000\b|\b28P01\b|password authentication failed|\bCWBSY\d{4}", re.I)


class As400ConnectionError(SyncSourceError):
    """The AS400 could not be reached or refused the login; the message names no secret."""


class As400AuthenticationError(As400ConnectionError, SourceAuthenticationError):
    """The AS400 refused the user profile or its password (never retried, see SourceAuthenticationError)."""


class As400ConfigError(SettingError):
    """An AS400_* setting that cannot be used as it is; the message names the setting, never a password."""


def _braced(value: str) -> str:
    """A value in ODBC braces, `}` doubled (SQLDriverConnect connection-string grammar)."""
    return "{" + value.replace("}", "}}") + "}"


# Characters the ODBC connection-string grammar reserves: a value holding one must be braced (SQLDriverConnect:
# "attribute values that contain the characters []{}(),;?*=!@ not enclosed with braces should be avoided").
_NEEDS_BRACES = re.compile(r"[\[\]{}(),;?*=!@]|^\s|\s$")


def password_value(profile: DriverProfile, password: str) -> str:
    """PWD as each driver reads it back unchanged.

    psqlODBC: always braced. Its parser keeps braced values literally and percent-decodes unbraced ones
    (`decode_or_remove_braces` in psqlodbc dlg_specific.c), so `%41` unbraced would arrive as `A`.
    IBM i Access: unbraced unless the grammar needs braces. IBM documents no brace handling for PWD, and
    IBM's own Python dialect passes the password bare (IBM/sqlalchemy-ibmi base.py create_connect_args:
    "PWD=%s"), so a password is sent the way IBM's code sends it; one that holds a reserved character can
    only be written braced, which relies on the driver following the ODBC grammar (README: check with
    test-connection once before enabling schedules, since each failed sign-on counts against QMAXSIGN).
    """
    if profile == "postgresql" or _NEEDS_BRACES.search(password):
        return _braced(password)
    return password


class As400Settings(EnvSettings):
    """Every AS400 setting, declared once: its variable, default and check; and how a session is opened.

    The Dagster resource (`As400Resource`) is this class plus the source it opens; code outside Dagster uses
    `As400Settings.from_env()`. Every value that could change the connection string's keywords is refused,
    naming its setting, when the settings are created (at launch for a Dagster run)."""

    setting_error: ClassVar[type[ValueError]] = As400ConfigError

    username: str = setting("AS400_USERNAME", "Read-only user profile", "")
    password: str = setting("AS400_PASSWORD", "Its password; never logged", "", secret=True)
    allowed_tables: str = setting("AS400_ALLOWED_TABLES", "Whitelist LIBRARY.TABLE,...", "")
    dsn: str | None = setting("AS400_DSN", "ODBC data source name", None)
    server: str | None = setting("AS400_SERVER", "Host name", None)
    port: int | None = setting("AS400_PORT", "Port (the IBM i driver ignores it)", None)
    database: str | None = setting("AS400_DATABASE", "RDB name", None)
    ssl: bool = setting("AS400_SSL", "TLS; no plaintext fallback when on", True)
    odbc_driver: str = setting("AS400_ODBC_DRIVER", "ODBC driver name", "IBM i Access ODBC Driver")
    driver_profile: str = setting("AS400_DRIVER_PROFILE", "Keyword set: ibmi or postgresql", "ibmi")
    odbc_options: str = setting("AS400_ODBC_OPTIONS", "Extra tuning keywords of the driver profile", "")
    batch_rows: int = setting("AS400_BATCH_ROWS", "Rows per fetched Arrow batch (the memory bound)",
                              DEFAULT_BATCH_ROWS)
    batch_bytes: int = setting("AS400_BATCH_BYTES", "Bytes of one fetched batch's transit buffer at most (the "
                               "memory bound for wide files)", DEFAULT_BATCH_BYTES)
    login_timeout_seconds: int = setting("AS400_LOGIN_TIMEOUT", "Seconds to wait for a session", 30)
    change_tracking: str = setting("AS400_CHANGE_TRACKING", "auto (a journaled file is read through its journal, "
                                   "others by change stamps) or stamps (never read a journal)", "auto")
    journal_window: int = setting("AS400_JOURNAL_WINDOW", "Journal entries per DISPLAY_JOURNAL window", 10_000)
    journal_margin: int = setting("AS400_JOURNAL_MARGIN", "Warn while the synced journal position is in one of "
                                  "this many oldest detached receivers", 1)

    def __init__(self, **values: Any) -> None:
        super().__init__(**values)
        self._check()

    def _check(self) -> None:
        """Refuses, naming the setting, every value that could change the connection string's keywords.
        Values still deferred (`dg.EnvVar`, resolved at launch) are checked once Dagster resolves them."""
        if self.driver_profile not in PROFILE_KEYWORDS:
            raise As400ConfigError(
                f"AS400_DRIVER_PROFILE must be 'ibmi' or 'postgresql', not {self.driver_profile!r}")
        for attribute, name in KEYWORD_SETTINGS.items():
            value = getattr(self, attribute)
            if value and (_CONNECTION_STRING_SYNTAX.search(value) or value != value.strip()):
                raise As400ConfigError(
                    f"{name}={value!r} cannot be an ODBC keyword value: no ; {{ }} [ ] =, control "
                    "characters or surrounding spaces"
                )
        if self.server and not _HOST.fullmatch(self.server):
            raise As400ConfigError(f"AS400_SERVER={self.server!r} must be a host name or an IP address")
        if not isinstance(self.password, dg.EnvVar) and _CONTROL.search(self.password):
            raise As400ConfigError("AS400_PASSWORD must not contain control characters (line breaks, NUL, tabs)")
        if self.port is not None and not 0 < self.port < 65_536:
            raise As400ConfigError(f"AS400_PORT={self.port} is not a TCP port")
        if self.batch_rows < 1:
            raise As400ConfigError(f"AS400_BATCH_ROWS={self.batch_rows} must be positive")
        if self.batch_bytes < 1 << 20:
            raise As400ConfigError(f"AS400_BATCH_BYTES={self.batch_bytes} must be at least 1 MiB")
        if self.change_tracking not in ("auto", "stamps"):
            raise As400ConfigError(f"AS400_CHANGE_TRACKING must be 'auto' or 'stamps', not {self.change_tracking!r}")
        if not 0 < self.journal_window <= 1_000_000:
            raise As400ConfigError(f"AS400_JOURNAL_WINDOW={self.journal_window} must be between 1 and 1000000")
        self.whitelist  # noqa: B018  (parsed now: a bad entry is refused at once)
        self.options()

    @property
    def whitelist(self) -> frozenset[QualifiedTable]:
        return parse_whitelist(self.allowed_tables)

    @property
    def profile(self) -> DriverProfile:
        return self.driver_profile  # type: ignore[return-value]  # checked on creation

    def options(self) -> dict[str, str]:
        """AS400_ODBC_OPTIONS as keywords: tuning keywords of the driver profile with plain values only."""
        allowed = {name.upper(): name for name in TUNABLE_KEYWORDS[self.profile]}
        options: dict[str, str] = {}
        for option in filter(None, (item.strip() for item in self.odbc_options.split(";"))):
            key, separator, value = (part.strip() for part in option.partition("="))
            if key.upper() in _CREDENTIAL_KEYWORDS:
                raise As400ConfigError("AS400_ODBC_OPTIONS must not carry credentials; use AS400_USERNAME/PASSWORD")
            pinned = {name.upper(): reason for name, reason in PINNED_KEYWORDS[self.profile].items()}
            if key.upper() in pinned:
                raise As400ConfigError(f"AS400_ODBC_OPTIONS: {key} cannot be set: {pinned[key.upper()]}")
            if key.upper() not in allowed:
                raise As400ConfigError(
                    f"AS400_ODBC_OPTIONS: {key!r} is not a tuning keyword of the {self.profile} driver profile "
                    f"({', '.join(sorted(allowed.values()))}); target, TLS and read-only keywords come from "
                    "the AS400_* settings"
                )
            if not separator or not _OPTION_VALUE.fullmatch(value):
                raise As400ConfigError(
                    f"AS400_ODBC_OPTIONS: {allowed[key.upper()]} needs a plain value (letters, digits, . _ -)"
                )
            options[allowed[key.upper()]] = value
        return options

    def connection_string(self, *, with_credentials: bool = False, bind_on_server: bool = False) -> str:
        """ODBC keywords; the credentials are added only where a driver API cannot take them apart.

        `bind_on_server` for statements whose parameters carry values (see SERVER_BINDING_KEYWORDS).
        """
        parts: dict[str, str] = {}
        if self.dsn:
            parts["DSN"] = self.dsn
        else:
            parts["DRIVER"] = "{" + self.odbc_driver + "}"
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
        parts.update(self.options())
        if bind_on_server:
            parts.update(SERVER_BINDING_KEYWORDS[self.profile])
        if with_credentials:
            # The user needs no braces (its syntax characters are refused) and psqlODBC would keep them in
            # the name; the password's form is per driver (password_value).
            parts["UID"] = self.username
            parts["PWD"] = password_value(self.profile, self.password)
        return ";".join(f"{key}={value}" for key, value in parts.items())

    @property
    def text_encoding(self) -> TextEncoding:
        return TEXT_ENCODING[self.profile]

    @property
    def isolation(self) -> str:
        return ISOLATION[self.profile]

    def redact(self, text: str) -> str:
        """Removes the password (and its ODBC-escaped form) from a message before it is shown."""
        for secret in sorted({self.password, _braced(self.password)}, key=len, reverse=True):
            if secret:
                text = text.replace(secret, "***")
        return text

    def connection_error(self, what: str, exc: Exception) -> As400ConnectionError:
        """The driver's error as ours, password removed; a refused sign-on becomes As400AuthenticationError."""
        text = str(exc)
        kind = As400AuthenticationError if _AUTHENTICATION_FAILURE.search(text) else As400ConnectionError
        return kind(f"{what}: {self.redact(text)}")

    def describe(self) -> str:
        """Where this connects to, for messages and the UI (no secrets)."""
        address = f"{self.server}:{self.port or 'default'}" if self.server else ""
        target = f"DSN {self.dsn}" + (f" at {address}" if address else "") if self.dsn else address or "?"
        return f"{target} as {self.username} (ssl={'on' if self.ssl else 'off'}, driver profile {self.profile})"

    @contextmanager
    def connect(self) -> Iterator[pyodbc.Connection]:
        """A pyodbc connection in read-only access mode, autocommit so no transaction holds locks; its
        statements are small (catalog, counts, probes, replay keys) and bind their values at the server."""
        try:
            connection = pyodbc.connect(
                self.connection_string(with_credentials=True, bind_on_server=True),
                readonly=True,
                autocommit=True,
                timeout=self.login_timeout_seconds,
            )
        except pyodbc.Error as exc:
            raise self.connection_error(f"cannot connect to the AS400 ({self.describe()})", exc) from None
        if self.profile == "postgresql":
            # Text both ways as UTF-8 narrow text, in the client encoding the profile pins: psqlODBC's ANSI
            # driver takes and delivers no UTF-16 ("HYC00 Unrecognized C_parameter type", "07006 Received an
            # unsupported type"). IBM's driver keeps pyodbc's default, UTF-16.
            connection.setencoding(encoding="utf-8")
            for kind in (pyodbc.SQL_CHAR, pyodbc.SQL_WCHAR):
                connection.setdecoding(kind, encoding="utf-8", ctype=pyodbc.SQL_CHAR)
        try:
            yield connection
        finally:
            connection.close()
