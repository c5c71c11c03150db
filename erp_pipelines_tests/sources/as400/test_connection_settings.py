"""Connection strings per driver profile, read-only keywords, and secrets kept out of every message."""

from __future__ import annotations

import pytest

from erp_pipelines.sources.as400.connection import As400Settings
from erp_pipelines.sources.as400.sql import parse_whitelist

SECRET = "s3cr;et}pw"


def _settings(**overrides: object) -> As400Settings:
    values: dict[str, object] = {
        "username": "SYNCRO",
        "password": SECRET,
        "allowed_tables": parse_whitelist("PRODUCTLIB.PRODUCTS"),
        "server": "ibmi.example.com",
        "database": "S1234567",
    }
    return As400Settings(**(values | overrides))  # type: ignore[arg-type]


def test_ibmi_profile_is_read_only_and_encrypted() -> None:
    text = _settings().connection_string()
    assert "DRIVER={IBM i Access ODBC Driver}" in text
    for keyword in ("CONNTYPE=2", "SSL=1", "SYSTEM=ibmi.example.com", "DATABASE=S1234567", "NAM=0"):
        assert keyword in text
    assert SECRET not in text and "PWD" not in text


def test_postgresql_profile_for_the_stand_in() -> None:
    text = _settings(profile="postgresql", dsn="ERP_AS400", port=5432).connection_string()
    assert text.startswith("DSN=ERP_AS400;")
    for keyword in ("ReadOnly=1", "SSLmode=require", "UseDeclareFetch=1", "Port=5432"):
        assert keyword in text
    assert "SSLmode=disable" in _settings(profile="postgresql", ssl=False).connection_string()


def test_credentials_are_escaped_when_included() -> None:
    text = _settings().connection_string(with_credentials=True)
    assert "PWD={s3cr;et}}pw}" in text


@pytest.mark.parametrize("option", ["PWD=x", "uid=admin", " Password = y"])
def test_extra_options_cannot_carry_credentials(option: str) -> None:
    with pytest.raises(ValueError, match="must not carry credentials"):
        _settings(extra_options=f"BLOCKSIZE=512;{option}").connection_string()


def test_password_never_shown() -> None:
    settings = _settings()
    assert SECRET not in repr(settings)
    assert SECRET not in settings.describe()
    message = f"login failed: PWD={{s3cr;et}}}}pw}} and {SECRET}"
    assert SECRET not in settings.redact(message)
    assert "s3cr;et}}pw" not in settings.redact(message)
