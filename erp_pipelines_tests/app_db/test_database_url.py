"""The application database URL: psycopg2 is the one driver, named or implied, and anything else is refused."""

from __future__ import annotations

import pytest

from erp_pipelines.app_db.engine import DatabaseUrlError, checked_url


@pytest.mark.parametrize(
    ("url", "message"),
    [("", "not set"), ("postgresql+psycopg://u:p@h/db", "use postgresql\\+psycopg2"),
     ("mysql://u:p@h/db", "use postgresql\\+psycopg2")],
)
def test_database_url_must_name_psycopg2(url: str, message: str) -> None:
    with pytest.raises(DatabaseUrlError, match=message):
        checked_url(url)


def test_bare_postgresql_url_means_psycopg2() -> None:
    assert checked_url("postgresql://u:p@h/db").drivername == "postgresql+psycopg2"
