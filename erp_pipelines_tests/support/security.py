"""Helpers of the security tests: a PostgreSQL wire tap in front of the AS400 stand-in, the 4D
emulator's request log, and secret matching in every textual form a secret can take.

What reached the AS400 stand-in is read on the wire, not in the server log: `PgProxy` sits between the
ODBC driver and PostgreSQL (plaintext on the client side, AS400_SSL=false) and records every message the
driver sends — the startup packet (user, database), simple queries ('Q'), prepared statement texts ('P')
and the values bound to them ('B'). That is exactly what the server receives, needs no server setting,
superuser or log file, and cannot mix up sessions of other people's tests. The SQL text does not depend
on TLS (libpq encrypts the same messages), so the TLS tests only check the transport.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import quote, quote_plus

import requests

from erp_pipelines.sources.as400.connection import As400Settings
from erp_sandbox.legacy_4d.server import EmulatorServer

SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104
CANCEL_REQUEST = 80877102

# Everything the driver may send on a read-only session: its own session set-up and catalog lookups, our
# SELECTs, and psqlODBC's cursor and transaction bookkeeping around them.
READ_ONLY_STATEMENT = re.compile(
    r"""\s*(?:
        (?:SELECT|select)\s
      | show\s+transaction_isolation\s*$
      | SET\s+(?:DateStyle|extra_float_digits)\s*=\s*[\w']+\s*$
      | (?:BEGIN|COMMIT|commit|ROLLBACK|rollback)\s*$
      | declare\s+"SQL_CUR\w+"\s+cursor\s+with\s+hold\s+for\s+SELECT\s
      | fetch\s+\d+\s+in\s+"SQL_CUR\w+"\s*$
      | close\s+"SQL_CUR\w+"\s*$
      | DEALLOCATE\s+"_PLAN\w+"\s*$
    )""",
    re.VERBOSE,
)


@dataclass
class PgSession:
    """One client connection as the proxy saw it."""

    tls_requested: bool = False
    startup: dict[str, str] = field(default_factory=dict)
    messages: list[tuple[bytes, bytes]] = field(default_factory=list)
    password: str | None = None


def _read_exactly(connection: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = connection.recv(size - len(data))
        if not chunk:
            raise ConnectionError("peer closed")
        data += chunk
    return data


def _read_message(connection: socket.socket) -> tuple[bytes, bytes]:
    kind = _read_exactly(connection, 1)
    (length,) = struct.unpack("!i", _read_exactly(connection, 4))
    return kind, _read_exactly(connection, length - 4)


def _cstrings(data: bytes) -> list[str]:
    return [part.decode("utf-8", "replace") for part in data.split(b"\0")]


def _bound_values(payload: bytes) -> list[str | None]:
    """Parameter values of a Bind message, as text (psqlODBC binds text; binary ones decoded leniently)."""
    offset = payload.index(b"\0") + 1
    offset = payload.index(b"\0", offset) + 1
    (formats,) = struct.unpack_from("!h", payload, offset)
    offset += 2 + 2 * formats
    (count,) = struct.unpack_from("!h", payload, offset)
    offset += 2
    values: list[str | None] = []
    for _ in range(count):
        (size,) = struct.unpack_from("!i", payload, offset)
        offset += 4
        if size < 0:
            values.append(None)
            continue
        values.append(payload[offset : offset + size].decode("utf-8", "replace"))
        offset += size
    return values


class PgProxy:
    """A PostgreSQL front door on a free port in front of the real server.

    It answers a TLS request with 'N' (so a client that requires TLS must give up) and records every message
    a client sends. With `ask_password` it does not forward at all: it asks for the password in clear
    text, records what the driver sends, and refuses the login — showing what a driver makes of a password.
    """

    def __init__(self, *, ask_password: bool = False) -> None:
        self.upstream = (os.environ.get("ERP_PG_HOST", "127.0.0.1"), int(os.environ.get("ERP_PG_PORT", "5432")))
        self.ask_password = ask_password
        self.sessions: list[PgSession] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, name="pg-proxy", daemon=True)

    @property
    def port(self) -> int:
        return int(self._listener.getsockname()[1])

    def __enter__(self) -> PgProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
        self._thread.join(timeout=5)

    def _track(self, sock: socket.socket) -> socket.socket:
        with self._lock:
            self._sockets.append(sock)
        return sock

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            session = PgSession()
            with self._lock:
                self.sessions.append(session)
            threading.Thread(target=self._serve, args=(self._track(client), session), daemon=True).start()

    def _serve(self, client: socket.socket, session: PgSession) -> None:
        server: socket.socket | None = None
        with contextlib.suppress(ConnectionError, OSError, struct.error):
            while True:
                (length,) = struct.unpack("!i", _read_exactly(client, 4))
                packet = _read_exactly(client, length - 4)
                (code,) = struct.unpack_from("!i", packet)
                if code not in (SSL_REQUEST, GSSENC_REQUEST):
                    break
                session.tls_requested |= code == SSL_REQUEST
                client.sendall(b"N")
            if code == CANCEL_REQUEST:
                raise ConnectionError("cancel requests are not forwarded")
            words = _cstrings(packet[4:])
            session.startup = dict(zip(words[0::2], words[1::2], strict=False))
            session.startup.pop("", None)
            if self.ask_password:
                self._take_password(client, session)
                raise ConnectionError("login refused by the proxy")
            server = self._track(socket.create_connection(self.upstream))
            server.sendall(struct.pack("!i", length) + packet)
            threading.Thread(target=self._pump, args=(server, client), daemon=True).start()
            while True:
                kind, payload = _read_message(client)
                if kind != b"p":  # SASL exchange: nothing worth keeping
                    session.messages.append((kind, payload))
                server.sendall(kind + struct.pack("!i", len(payload) + 4) + payload)
        for sock in filter(None, (client, server)):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    @staticmethod
    def _take_password(client: socket.socket, session: PgSession) -> None:
        client.sendall(b"R" + struct.pack("!ii", 8, 3))  # AuthenticationCleartextPassword
        kind, payload = _read_message(client)
        if kind == b"p":
            session.password = payload.rstrip(b"\0").decode("utf-8", "replace")
        fields = b"SFATAL\0C28P01\0Mpassword authentication failed (test proxy)\0\0"
        client.sendall(b"E" + struct.pack("!i", len(fields) + 4) + fields)

    @staticmethod
    def _pump(source: socket.socket, target: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                target.sendall(data)
        with contextlib.suppress(OSError):
            target.shutdown(socket.SHUT_RDWR)

    def messages(self, kind: bytes) -> list[bytes]:
        with self._lock:
            return [payload for session in self.sessions for k, payload in session.messages if k == kind]

    def statement_texts(self) -> list[str]:
        """Every SQL text the server received: simple queries and prepared statements."""
        simple = [_cstrings(payload)[0] for payload in self.messages(b"Q")]
        prepared = [_cstrings(payload)[1] for payload in self.messages(b"P")]
        return simple + prepared

    def bound_values(self) -> list[str | None]:
        return [value for payload in self.messages(b"B") for value in _bound_values(payload)]

    def assert_only_reads(self) -> None:
        """Nothing but SELECTs (and the driver's read-only bookkeeping) reached the server, no function call."""
        for text in self.statement_texts():
            for part in filter(str.strip, text.split(";")):
                assert READ_ONLY_STATEMENT.match(part), f"not a read reached the stand-in: {part!r}"
        assert not self.messages(b"F"), "a fast-path function call reached the stand-in"
        assert not self.messages(b"d"), "COPY data reached the stand-in"


def through(proxy: PgProxy, settings: As400Settings, **changes: object) -> As400Settings:
    """The same AS400 settings, pointed at the proxy in plaintext (so the proxy can read the messages)."""
    return settings.replaced(server="127.0.0.1", port=proxy.port, ssl=False, **changes)


def request_log(server: EmulatorServer | str, verify: bool | str = True) -> list[dict]:
    """Every request the emulator (object or base URL) received: method, path, decoded query parameters,
    status, body size — never a header."""
    base_url = server if isinstance(server, str) else server.base_url
    response = requests.get(f"{base_url}/_emulator/requests", timeout=10, verify=verify)
    response.raise_for_status()
    return response.json()["requests"]


def secret_forms(secret: str) -> set[str]:
    """A secret as it can appear in text: raw, URL-encoded (path, form and strict), JSON-escaped, ODBC-braced."""
    forms = {secret, quote(secret), quote(secret, safe=""), quote_plus(secret), json.dumps(secret)[1:-1],
             json.dumps(secret, ensure_ascii=False)[1:-1], "{" + secret.replace("}", "}}") + "}"}
    return {form for form in forms if len(form) >= 6}


def refusal(make: Callable[[], object], kind: type[Exception]) -> Exception | None:
    """The error `make` raises (of `kind`), or None when it succeeds: for values either refused or accepted."""
    try:
        make()
    except kind as exc:
        return exc
    return None


def leaked(text: str, secrets: dict[str, str]) -> list[str]:
    """Names of the secrets that appear in `text` in any of their forms."""
    return sorted(name for name, value in secrets.items() if value and any(f in text for f in secret_forms(value)))


# Injection payloads for every door a value has into a source (security/test_injection_payloads.py).
PAYLOADS: list[str] = [
    "'; DROP TABLE x; --",
    "' OR '1'='1",
    '" OR "1"="1',
    "') OR ('1'='1",
    '") OR 1=1 --',
    "1=1) OR (ProductID>0",
    "x' UNION SELECT usename, passwd FROM pg_shadow --",
    'x\'; DELETE FROM "PRODUCTLIB"."PRODUCTS"; --',
    "x'||pg_sleep(5)||'",
    "/* comment */ x",
    "x -- trailing comment",
    "x; COMMIT; DROP TABLE y",
    "$1 OR 1=1",  # a PostgreSQL positional parameter; "$1" alone is a valid IBM i system name
    ":1",
    "? OR 1=1",
    "\\'; SELECT 1; --",
    "\\u0027 OR 1=1",
    "x&$method=delete",
    "x%26$method=delete",
    "x%27 OR %271%27=%271",
    "a|b|c",
    "x)|(y",
    "x\x00y",
    "line\r\nSet-Cookie: 4DSID_ERP=stolen",
    "x;ReadOnly=0;SSLmode=disable",
    "x};UID=postgres;PWD={y",
    "{x}",
    "${AS400_PASSWORD}$(id)`id`",
    "@*%_",
    "CALL QSYS2.QCMDEXC('DLTLIB PRODUCTLIB')",
    'SKU", "PASSWORD',
    "Grüße \u202efi\ufb01",
]
PAYLOAD_IDS = [f"p{index:02d}" for index in range(len(PAYLOADS))]

# Writes psqlODBC's ReadOnly=1 refuses itself (it looks at the statement's first word).
WRITES = [
    'DELETE FROM "PRODUCTLIB"."PRODUCTS"',
    'UPDATE "PRODUCTLIB"."PRODUCTS" SET "SKU" = \'\'',
    'INSERT INTO "PRODUCTLIB"."PRODUCTS" ("ITEMNO") VALUES (\'X\')',
    'CREATE TABLE "PRODUCTLIB"."X" ("A" INTEGER)',
    'ALTER TABLE "PRODUCTLIB"."PRODUCTS" ADD "Z" INTEGER',
    'DROP TABLE "PRODUCTLIB"."PRODUCTS"',
    'GRANT SELECT ON "PRODUCTLIB"."PRODUCTS" TO PUBLIC',
    'COPY "PRODUCTLIB"."PRODUCTS" FROM STDIN',
    "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
]
# Writes the driver keyword lets through (first word not on its list): refused by the server's layers,
# and before all of them by our guard.
WRITES_PAST_THE_DRIVER = [
    'TRUNCATE "PRODUCTLIB"."PRODUCTS"',
    'MERGE INTO "PRODUCTLIB"."PRODUCTS" t USING "PRODUCTLIB"."PRODUCTS" s ON true WHEN MATCHED THEN DELETE',
    'SELECT * INTO "PRODUCTLIB"."COPY" FROM "PRODUCTLIB"."PRODUCTS"',
    '/* note */ DELETE FROM "PRODUCTLIB"."PRODUCTS"',
    'WITH d AS (DELETE FROM "PRODUCTLIB"."PRODUCTS" RETURNING 1) SELECT count(*) FROM d',
    'SELECT 1; DELETE FROM "PRODUCTLIB"."PRODUCTS"',
    'DO $$BEGIN DELETE FROM "PRODUCTLIB"."PRODUCTS"; END$$',
]
# PostgreSQL performs this one even in a read-only transaction for a SELECT-only role: only the guard stops it.
LARGE_OBJECT = "select lo_create(0) from \"SYSIBM\".\"SYSDUMMY1\" FOR READ ONLY"
