"""TLS to the sources: used when configured, and a server that offers only plaintext is refused.

The fallback test puts `PgProxy` in front of the stand-in: it answers PostgreSQL's SSLRequest with 'N'
("no TLS here") and otherwise forwards. With AS400_SSL=true the sync must give up before sending a login;
with AS400_SSL=false the same proxy works, so the refusal is the TLS requirement and nothing else. The 4D
side is checked against the emulator serving HTTPS with a throw-away self-signed certificate.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pyodbc
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from erp_pipelines.app_db.engine import app_engine
from erp_pipelines.catalog import get_spec
from erp_pipelines.sources.as400 import sql
from erp_pipelines.sources.as400.adapter import As400Extraction, As400Source
from erp_pipelines.sources.as400.connection import As400ConnectionError, As400Settings
from erp_pipelines.sources.as400.resource import As400Resource, as400_resource
from erp_pipelines.sources.legacy_4d.client import Legacy4DClient
from erp_pipelines.sources.legacy_4d.errors import Legacy4DError
from erp_pipelines.sources.legacy_4d.resource import legacy_4d_resource
from erp_pipelines_tests.support.legacy_4d import PASSWORD, USERNAME
from erp_pipelines_tests.support.security import PgProxy, request_log, through
from erp_sandbox.as400.seed import SeedManifest
from erp_sandbox.legacy_4d.server import EmulatorServer

pytestmark = pytest.mark.integration

OWN_SESSIONS = (
    "select count(*), bool_and(s.ssl), min(s.version) from pg_stat_ssl s join pg_stat_activity a using (pid) "
    "where a.usename = current_user and a.datname = current_database() and a.pid <> pg_backend_pid()"
)


def _encryption(connection: pyodbc.Connection) -> tuple[bool, str]:
    ssl, version = connection.cursor().execute(
        "select ssl, version from pg_stat_ssl where pid = pg_backend_pid()"
    ).fetchone()
    return ssl in (True, 1, "1"), version or ""


def test_every_session_to_the_stand_in_is_encrypted(as400: As400Resource, seed: Callable[..., SeedManifest]) -> None:
    """The catalog/count session (pyodbc) and the streamed read (arrow-odbc) both run over TLS 1.2+."""
    seed(products=60, bad_share=0.0)
    settings = as400.replaced(batch_rows=10)
    assert settings.ssl and "SSLmode=require" in settings.connection_string()
    with settings.connect() as connection:
        assert _encryption(connection)[0]
        assert _encryption(connection)[1] in ("TLSv1.2", "TLSv1.3")
        statement = sql.select_rows(sql.QualifiedTable("PRODUCTLIB", "PRODUCTS"), ["ITEMNO"], order_by=["ITEMNO"])
        stream = As400Extraction(settings, get_spec("product"), [statement]).batches()
        first = next(stream)  # the read is open on its own session now
        sessions, all_encrypted, version = connection.cursor().execute(OWN_SESSIONS).fetchone()
        assert first.num_rows == 10 and sessions >= 1
        assert all_encrypted in (True, 1, "1") and version in ("TLSv1.2", "TLSv1.3")
        assert sum(batch.num_rows for batch in stream) == 50


def test_plaintext_server_is_refused_when_tls_is_required(pg_proxy: PgProxy) -> None:
    env = {**os.environ, "AS400_DATABASE": os.environ["TEST_AS400_DATABASE"], "AS400_SERVER": "127.0.0.1",
           "AS400_PORT": str(pg_proxy.port), "AS400_SSL": "true"}
    settings = as400_resource(env, secrets_from_env_var=False)
    source = As400Source(settings)
    statement = sql.count_rows(sql.QualifiedTable("PRODUCTLIB", "PRODUCTS"))
    attempts: list[Callable[[], object]] = [
        source.test_connection,
        lambda: source.count_rows(get_spec("product")),
        lambda: list(As400Extraction(settings, get_spec("product"), [statement]).batches()),  # arrow-odbc
    ]
    for attempt in attempts:
        with pytest.raises(As400ConnectionError) as refused:
            attempt()
        message = str(refused.value)
        assert "SSL" in message and "required" in message, message
        assert "cannot connect to the AS400" in message or "reading PRODUCTLIB.PRODUCTS failed" in message
        assert os.environ["AS400_PASSWORD"] not in message
    assert len(pg_proxy.sessions) == len(attempts)
    for session in pg_proxy.sessions:
        assert session.tls_requested and session.startup == {}, "no login may follow the plaintext answer"


def test_the_same_plaintext_server_works_once_tls_is_off(as400: As400Resource, pg_proxy: PgProxy) -> None:
    """Proves the refusal above is the TLS requirement: without it the proxy path is fine (and plaintext)."""
    settings = through(pg_proxy, as400)
    assert As400Source(settings).test_connection() == "1"
    with settings.connect() as connection:
        assert _encryption(connection) == (False, "")
    assert all(not session.tls_requested for session in pg_proxy.sessions)
    assert {session.startup["user"] for session in pg_proxy.sessions} == {settings.username}


def test_app_database_url_sslmode_require_refuses_plaintext(app_url: str, pg_proxy: PgProxy) -> None:
    """The application database has no setting of its own: its URL's sslmode is honoured by app_engine."""
    url = make_url(app_url)
    proxied = url.set(host="127.0.0.1", port=pg_proxy.port, query={"sslmode": "require"})
    with pytest.raises(sa.exc.OperationalError, match="SSL") as refused:
        app_engine(proxied.render_as_string(hide_password=False)).connect()
    assert url.password and url.password not in str(refused.value)
    direct = url.set(query={"sslmode": "require"}).render_as_string(hide_password=False)
    with app_engine(direct).connect() as connection:
        assert connection.exec_driver_sql("select ssl from pg_stat_ssl where pid = pg_backend_pid()").scalar_one()


# --- 4D over HTTPS ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A throw-away self-signed certificate for 127.0.0.1 (its own CA) and its key."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )
    return cert, key


@pytest.fixture
def https_server(make_legacy4d_server: Callable[..., EmulatorServer], certificate: tuple[Path, Path]) -> EmulatorServer:
    cert, key = certificate
    return make_legacy4d_server(tls_cert=cert, tls_key=key)


def _client(server: EmulatorServer, **options: object) -> Legacy4DClient:
    return Legacy4DClient(server.host, server.port, USERNAME, PASSWORD, max_retries=0, timeout=10.0, **options)


def test_4d_over_https_verifies_the_certificate(https_server: EmulatorServer, certificate: tuple[Path, Path],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Verification is on by default: an untrusted certificate stops the client before it sends anything;
    trusted (a CA bundle, here the certificate itself), the same server works."""
    cert, _ = certificate
    assert https_server.base_url.startswith("https://")
    with pytest.raises(Legacy4DError, match="SSLError") as untrusted:
        _client(https_server, scheme="https").connect()
    assert PASSWORD not in str(untrusted.value)
    assert request_log(https_server, verify=str(cert)) == []
    with _client(https_server, scheme="https", verify=str(cert)) as client:
        assert client.count("Products") == 0
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
    env = {"LEGACY_API_HOST": https_server.host, "LEGACY_API_PORT": str(https_server.port),
           "LEGACY_API_USERNAME": USERNAME, "LEGACY_API_PASSWORD": PASSWORD, "LEGACY_API_SCHEME": "https"}
    with legacy_4d_resource(env, secrets_from_env_var=False).client() as client:  # verify on, CA from the env
        assert client.count("Products") == 0
    # two deployments (an in-memory session, then the session file): one login each, no logout (4D v18+ has none)
    assert [entry["path"] for entry in request_log(https_server, verify=str(cert))] == [
        "/rest/$directory/login", "/rest/Products"] * 2


def test_4d_scheme_mismatch_never_falls_back(https_server: EmulatorServer, legacy4d_server: EmulatorServer,
                                            certificate: tuple[Path, Path]) -> None:
    """http against an HTTPS server and https against a plain one both fail; nothing reaches the REST layer."""
    with pytest.raises(Legacy4DError, match="unreachable"):
        _client(https_server, scheme="http").connect()
    with pytest.raises(Legacy4DError, match="unreachable"):
        _client(legacy4d_server, scheme="https").connect()
    assert request_log(https_server, verify=str(certificate[0])) == []
    assert request_log(legacy4d_server) == []


def test_4d_tls_verification_cannot_be_switched_off_by_a_typo(legacy4d_server: EmulatorServer) -> None:
    env = {"LEGACY_API_HOST": "127.0.0.1", "LEGACY_API_PORT": str(legacy4d_server.port), "LEGACY_API_SCHEME": "https"}
    for typo in ("ture", "yes please", "1 "):
        if typo.strip() == "1":
            assert legacy_4d_resource({**env, "LEGACY_API_VERIFY_TLS": typo}, secrets_from_env_var=False).verify_tls
            continue
        with pytest.raises(ValueError, match="LEGACY_API_VERIFY_TLS"):
            legacy_4d_resource({**env, "LEGACY_API_VERIFY_TLS": typo}, secrets_from_env_var=False)
    assert not legacy_4d_resource({**env, "LEGACY_API_VERIFY_TLS": "false"}, secrets_from_env_var=False).verify_tls


def test_settings_default_to_tls(as400: As400Resource) -> None:
    """An unset AS400_SSL means TLS; only an explicit false turns it off."""
    env = {key: value for key, value in os.environ.items() if key != "AS400_SSL"}
    assert As400Settings.from_env(env).ssl
    assert "SSLmode=require" in as400.replaced(dsn=None).connection_string()
    assert "SSL=1" in as400.replaced(driver_profile="ibmi").connection_string()
