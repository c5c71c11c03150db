"""A faithful 4D REST server emulator (default and force-login modes, data change tracking) over PostgreSQL.

Faithful by default to 4D v18-v21 as documented, including the inconvenient parts: every session (and the
4D Client license it holds) lives until its inactivity timeout, whatever ``$directory/logout`` does; in the
default login mode any request without a valid session cookie opens a session holding a license (a refused
login and a 401 answer included); force-login mode hands out license-free guest sessions limited to
descriptive requests until ``authentify()`` grants privileges. Each behaviour cites the documentation.

Run ``python -m erp_sandbox.legacy_4d.server --help``. Tests use :func:`start_in_thread`.
Non-4D control endpoints live under ``/_emulator/`` (fault injection, stats, request log, config, a
simulated clock, server restart, data-file backup/restore and ``setGlobalStamp``).
``--tls-cert``/``--tls-key`` serve HTTPS. Secrets (store URL, password) are best given as environment
variables: command-line arguments are visible to every user in the process list.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import socket
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from .config import EmulatorConfig
from .errors import RestError
from .rest import Response, RestApp
from .store import LegacyStore

log = logging.getLogger("erp_sandbox.legacy_4d")


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], app: RestApp, tls: ssl.SSLContext | None = None) -> None:
        self.app = app
        self.tls = tls
        super().__init__(address, _Handler)

    def get_request(self) -> tuple[socket.socket, object]:
        """With TLS, the handshake is left to the connection's own thread, so a slow client blocks nobody."""
        connection, address = super().get_request()
        if self.tls is not None:
            connection = self.tls.wrap_socket(connection, server_side=True, do_handshake_on_connect=False)
        return connection, address

    def handle_error(self, request: object, client_address: object) -> None:
        if isinstance(sys.exc_info()[1], ssl.SSLError):
            log.info("TLS handshake with %s failed: %s", client_address, sys.exc_info()[1])
            return
        super().handle_error(request, client_address)  # type: ignore[arg-type]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "4D/20 legacy-4d-emulator"
    server: _HTTPServer

    def setup(self) -> None:
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(10)
            self.request.do_handshake()
            self.request.settimeout(None)
        super().setup()

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        try:
            response = self.server.app.handle(self.command, self.path, self.headers, body)
        except Exception as exc:
            log.exception("unhandled error on %s %s", self.command, self.path)
            response = Response(500, RestError(500, (1, f"Internal emulator error: {exc}")).body())
        if response.abort:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.send_response(response.status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(response.body)

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def log_message(self, format: str, *args: object) -> None:
        if self.server.app.config.log_requests:
            log.info("%s - %s", self.address_string(), format % args)


class EmulatorServer:
    """The emulator as an object: ``EmulatorServer(url, port=0).start()`` in tests, ``serve_forever`` in a CLI."""

    def __init__(
        self,
        store_url: str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        licenses: int = 3,
        app_name: str = "ERP",
        username: str | None = None,
        password: str | None = None,
        session_timeout: float = 3600.0,
        entity_set_timeout: float = 7200.0,
        max_db_connections: int = 8,
        log_requests: bool = False,
        ensure_schema: bool = True,
        tls_cert: str | Path | None = None,
        tls_key: str | Path | None = None,
        force_login: bool = False,
        logout_releases: bool = False,
        plain_attributes_param: bool = True,
        cookie_domain: str | None = None,
        unexposed: tuple[str, ...] = (),
    ) -> None:
        self.config = EmulatorConfig(host, port, licenses, app_name, username, password, session_timeout,
                                     entity_set_timeout, log_requests, force_login, logout_releases,
                                     plain_attributes_param, cookie_domain, tuple(unexposed))
        tls = None
        if tls_cert:
            tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            tls.load_cert_chain(tls_cert, tls_key)
        self.store = LegacyStore(store_url, max_db_connections)
        if ensure_schema:
            self.store.ensure_schema()
        self.app = RestApp(self.config, self.store)
        self.httpd = _HTTPServer((host, port), self.app, tls)
        self._thread: threading.Thread | None = None
        self._stopped = False

    @property
    def host(self) -> str:
        return str(self.httpd.server_address[0])

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    @property
    def scheme(self) -> str:
        return "http" if self.httpd.tls is None else "https"

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    def start(self) -> EmulatorServer:
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="legacy-4d-emulator", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self.httpd.serve_forever()

    def stop(self) -> None:
        """Stop serving and close the store; safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        if self._thread:
            self.httpd.shutdown()
            self._thread.join(timeout=10)
        self.httpd.server_close()
        self.store.close()

    def __enter__(self) -> EmulatorServer:
        return self if self._thread else self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_in_thread(store_url: str, **kwargs: object) -> EmulatorServer:
    """Start an emulator on a background thread (``port=0`` picks a free port); call ``stop()`` after."""
    return EmulatorServer(store_url, **kwargs).start()  # type: ignore[arg-type]


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(name) or default


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="4D REST server emulator backed by PostgreSQL")
    parser.add_argument("--host", default=_env("LEGACY_API_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(_env("LEGACY_API_PORT", "8080") or 8080))
    parser.add_argument("--store-url", default=_env("LEGACY4D_STORE_URL"),
                        help="psycopg2 DSN or URL (holds a password: prefer LEGACY4D_STORE_URL)")
    parser.add_argument("--licenses", type=int, default=int(_env("LEGACY4D_LICENSES", "3") or 3))
    parser.add_argument("--app-name", default=_env("LEGACY4D_APP_NAME", "ERP"))
    parser.add_argument("--username", default=_env("LEGACY_API_USERNAME"))
    parser.add_argument("--password", default=_env("LEGACY_API_PASSWORD"), help="prefer LEGACY_API_PASSWORD")
    parser.add_argument("--session-timeout", type=float,
                        default=float(_env("LEGACY4D_SESSION_TIMEOUT", "3600") or 3600),
                        help="session inactivity timeout in seconds (4D default: 60 minutes)")
    parser.add_argument("--entity-set-timeout", type=float, default=7200.0, help="default $timeout in seconds")
    parser.add_argument("--db-connections", type=int, default=8)
    parser.add_argument("--ready-file", type=Path, help="written with the base URL once the server accepts requests")
    parser.add_argument("--log-requests", action="store_true")
    parser.add_argument("--tls-cert", default=_env("LEGACY4D_TLS_CERT"), help="PEM certificate: serve HTTPS")
    parser.add_argument("--tls-key", default=_env("LEGACY4D_TLS_KEY"), help="its PEM private key")
    parser.add_argument("--force-login", action="store_true", default=_env("LEGACY4D_FORCE_LOGIN") == "true",
                        help="force login mode (4D 20 R6+ default): guest sessions until $catalog/authentify")
    parser.add_argument("--logout-releases", action="store_true",
                        help="pre-v18 behaviour: $directory/logout closes the session and frees its license")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not args.store_url:
        parser.error("--store-url (or LEGACY4D_STORE_URL) is required")
    if bool(args.username) != bool(args.password):
        parser.error("give both --username and --password, or neither (open access)")
    server = EmulatorServer(
        args.store_url, host=args.host, port=args.port, licenses=args.licenses, app_name=args.app_name,
        username=args.username, password=args.password, session_timeout=args.session_timeout,
        entity_set_timeout=args.entity_set_timeout, max_db_connections=args.db_connections,
        log_requests=args.log_requests, tls_cert=args.tls_cert, tls_key=args.tls_key,
        force_login=args.force_login, logout_releases=args.logout_releases,
    )
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.httpd.shutdown, daemon=True).start())
    if args.ready_file:
        args.ready_file.write_text(server.base_url + "\n")
    mode = "force login" if args.force_login else "login required" if args.username else "open access"
    print(f"legacy-4d emulator ready on {server.base_url} (app {args.app_name}, {args.licenses} licenses, {mode})",
          flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.httpd.server_close()
        server.store.close()
        if args.ready_file:
            args.ready_file.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
