"""Fixtures of the security tests: the PostgreSQL wire tap in front of the AS400 stand-in (see
erp_pipelines_tests/support/security.py) and the test's AS400 settings through it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from erp_pipelines.sources.as400.connection import As400Settings
from erp_pipelines.sources.as400.resource import As400Resource
from erp_pipelines_tests.support.security import PgProxy, through


@pytest.fixture
def pg_proxy() -> Iterator[PgProxy]:
    with PgProxy() as proxy:
        yield proxy


@pytest.fixture
def password_trap() -> Iterator[PgProxy]:
    with PgProxy(ask_password=True) as proxy:
        yield proxy


@pytest.fixture
def tapped_as400(as400: As400Resource, pg_proxy: PgProxy) -> As400Settings:
    """The test's AS400 settings through the wire tap."""
    return through(pg_proxy, as400)
