"""Connection strings per driver profile, read-only keywords, and secrets kept out of every message."""

from __future__ import annotations

import pytest

from erp_pipelines.sources.as400.connection import As400Settings

SECRET = "s3cr;et}pw"


def _settings(**overrides: object) -> As400Settings:
    values: dict[str, object] = {
        "username": "SYNCRO",
        "password": SECRET,
        "allowed_tables": "PRODUCTLIB.PRODUCTS",
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
    text = _settings(driver_profile="postgresql", dsn="ERP_AS400", port=5432).connection_string()
    assert text.startswith("DSN=ERP_AS400;")
    for keyword in ("ReadOnly=1", "SSLmode=require", "UseDeclareFetch=1", "Port=5432"):
        assert keyword in text
    assert "SSLmode=disable" in _settings(driver_profile="postgresql", ssl=False).connection_string()


def test_credentials_are_escaped_when_included() -> None:
    text = _settings().connection_string(with_credentials=True)
    assert "PWD={s3cr;et}}pw}" in text


@pytest.mark.parametrize("option", ["PWD=x", "uid=admin", " Password = y"])
def test_extra_options_cannot_carry_credentials(option: str) -> None:
    with pytest.raises(ValueError, match="must not carry credentials"):
        _settings(odbc_options=f"BLOCKSIZE=512;{option}").connection_string()


def test_password_never_shown() -> None:
    settings = _settings()
    assert SECRET not in repr(settings)
    assert SECRET not in settings.describe()
    message = f"login failed: PWD={{s3cr;et}}}}pw}} and {SECRET}"
    assert SECRET not in settings.redact(message)
    assert "s3cr;et}}pw" not in settings.redact(message)


def _keywords(text: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in text.split(";") if not part.startswith("ConnSettings"))


def test_ibmi_profile_reads_committed_rows_in_autocommit() -> None:
    """CMT=1 alone does nothing under autocommit: without TRUEAUTOCOMMIT=1 IBM's driver runs autocommit at
    *NONE (IBM i Access, "Isolation level considerations"), i.e. reads uncommitted rows."""
    keywords = _keywords(_settings().connection_string())
    assert (keywords["CMT"], keywords["TRUEAUTOCOMMIT"]) == ("1", "1")
    assert _settings().isolation.startswith("*CS")


def test_ibmi_text_cannot_depend_on_the_client_code_page() -> None:
    from arrow_odbc import TextEncoding

    keywords = _keywords(_settings().connection_string())
    assert keywords["CCSID"] == "1208"
    assert _settings().text_encoding is TextEncoding.UTF16  # wide text: UTF-16 by ODBC's definition
    stand_in = _settings(driver_profile="postgresql").connection_string()
    assert "ConnSettings={SET client_encoding TO 'UTF8'}" in stand_in


@pytest.mark.parametrize("option", ["SORTTYPE=2", "sortsequence=1", "LANGUAGEID=DEU", "SORTTABLE=QSYS/QLA1",
                                    "SORTWEIGHT=0", "CMT=0", "TRUEAUTOCOMMIT=0", "CCSID=819", "TRANSLATE=1"])
def test_keywords_that_change_what_the_data_means_are_pinned(option: str) -> None:
    assert _keywords(_settings().connection_string())["SORTTYPE"] == "0"
    with pytest.raises(ValueError, match="cannot be set: the"):
        _settings(odbc_options=f"BLOCKSIZE=512;{option}")


def test_the_stand_in_client_encoding_is_pinned_too() -> None:
    with pytest.raises(ValueError, match="client encoding is pinned"):
        _settings(driver_profile="postgresql", odbc_options="ConnSettings=x")


@pytest.mark.parametrize(
    ("password", "ibmi", "postgresql"),
    [
        ("Secret9", "PWD=Secret9", "PWD={Secret9}"),
        ("pct%41pct", "PWD=pct%41pct", "PWD={pct%41pct}"),  # psqlODBC percent-decodes unbraced values
        ("a;b", "PWD={a;b}", "PWD={a;b}"),
        ("x}y{", "PWD={x}}y{}", "PWD={x}}y{}"),
        ("at@sign", "PWD={at@sign}", "PWD={at@sign}"),
        (" lead", "PWD={ lead}", "PWD={ lead}"),
    ],
)
def test_password_braces_follow_each_driver(password: str, ibmi: str, postgresql: str) -> None:
    """IBM's driver gets the password bare, as IBM's own code sends it, unless the ODBC grammar needs braces;
    psqlODBC always gets it braced (it keeps braced values literally)."""
    assert _settings(password=password).connection_string(with_credentials=True).endswith(ibmi)
    assert _settings(password=password, driver_profile="postgresql").connection_string(
        with_credentials=True).endswith(postgresql)
