"""The security checks that need no service: the payload list itself, the SQL guard on its own, the secret
detector, and the scripts' command lines. Their counterparts on the wire are in test_injection_payloads.py,
test_read_only_layers.py and test_secrets_scan.py."""

from __future__ import annotations

import json
import re
import secrets
from urllib.parse import quote, quote_plus

import pytest

from erp_pipelines.sources.as400.sql import UnsafeSqlError, guard_select, parse_whitelist
from erp_pipelines_tests.support.sandbox import ROOT
from erp_pipelines_tests.support.security import (
    LARGE_OBJECT,
    PAYLOADS,
    WRITES,
    WRITES_PAST_THE_DRIVER,
    leaked,
)


def test_every_payload_is_outside_the_identifier_and_host_alphabets() -> None:
    """A payload made only of name characters would pass as a (harmless) name and prove nothing."""
    assert len(PAYLOADS) >= 30 and len(set(PAYLOADS)) == len(PAYLOADS)
    for payload in PAYLOADS:
        assert any(not (ch.isascii() and (ch.isalnum() or ch == "_")) for ch in payload), payload


def test_guard_alone_refuses_every_write_form() -> None:
    """Our SQL guard, before any driver: plain, disguised and function-call writes."""
    allowed = parse_whitelist("PRODUCTLIB.PRODUCTS")
    for statement in [*WRITES, *WRITES_PAST_THE_DRIVER, LARGE_OBJECT]:
        with pytest.raises(UnsafeSqlError, match="refused SQL"):
            guard_select(statement, allowed)


def test_the_scan_sees_every_form_of_a_secret() -> None:
    """The detector itself: raw, URL-encoded (three ways), JSON-escaped and ODBC-braced forms are found."""
    password = f"4D·{secrets.token_hex(6)}&%2F:@/ é;{{x}}"
    secret = {"p": password}
    forms = [password, quote(password), quote(password, safe=""), quote_plus(password),
             json.dumps(password), "{" + password.replace("}", "}}") + "}"]
    assert len(set(forms)) == len(forms)
    for form in forms:
        assert leaked(f"...{form}...", secret) == ["p"], form
    assert leaked(password[:-1], secret) == []


def test_scripts_keep_database_urls_off_command_lines() -> None:
    """Command lines are visible to every local user: the scripts hand URLs with passwords to the seeders,
    the provisioner and the emulator through the environment (only a user-supplied ERP_PG_ADMIN_URL is
    still given to psql as an argument)."""
    for script in ("demo", "setup", "test", "_common.sh"):
        for number, line in enumerate((ROOT / "scripts" / script).read_text().splitlines(), start=1):
            where = f"scripts/{script}:{number}: {line.strip()}"
            assert not re.search(r"--(store-url|owner-url|password)\b", line), where
            assert not re.search(r'psql "\$(?!ERP_PG_ADMIN_URL)\w*URL', line), where
