"""Connections to the application database."""

from __future__ import annotations

import functools

import sqlalchemy as sa
from sqlalchemy.engine import make_url


class DatabaseUrlError(ValueError):
    """APP_DATABASE_URL is missing or names a driver this project does not run on."""


def checked_url(url: str) -> sa.URL:
    """Parses the application URL; a bare `postgresql://` would mean psycopg 3 under SQLAlchemy 2.1."""
    if not url:
        raise DatabaseUrlError("APP_DATABASE_URL is not set")
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg2")
    if parsed.drivername != "postgresql+psycopg2":
        raise DatabaseUrlError(
            f"APP_DATABASE_URL uses driver {parsed.drivername!r}; use postgresql+psycopg2://user:password@host/db"
        )
    return parsed


PROJECT_SCHEMA = "erp_sync"
"""The one schema the project adds to the application's database: its audit, quarantine and watermark tables,
its views and its own target tables. The application's tables stay where the application put them."""


@functools.cache
def app_engine(url: str) -> sa.Engine:
    """One pooled engine per URL and process; its sessions find the project's tables first, then `public`."""
    return sa.create_engine(
        checked_url(url), pool_pre_ping=True,
        connect_args={"application_name": "erp_pipelines", "options": f"-c search_path={PROJECT_SCHEMA},public"},
    )
