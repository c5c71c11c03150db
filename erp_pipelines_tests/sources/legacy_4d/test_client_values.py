"""What the 4D client decides before and without a server: `$filter` built from placeholders only, 4D's date
and time texts parsed or refused, and an unreachable server named as such."""

from __future__ import annotations

import datetime as dt
import re
import socket

import pytest

from erp_pipelines.sources.legacy_4d.client import (
    Legacy4DClient,
    Legacy4DError,
    build_filter,
    parse_4d_date,
    parse_4d_time,
)
from erp_pipelines_tests.support.legacy_4d import PASSWORD, USERNAME


def test_unreachable_server_is_a_clear_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = Legacy4DClient("127.0.0.1", port, USERNAME, PASSWORD, max_retries=1, backoff_seconds=0.01)
    with pytest.raises(Legacy4DError) as caught:
        client.connect()
    assert caught.value.status is None and "unreachable" in str(caught.value) and "2 attempt(s)" in str(caught.value)
    assert PASSWORD not in str(caught.value)


def test_build_filter_uses_placeholders_only() -> None:
    expression, params = build_filter([("SKU", "=", "A'1"), ("CreatedDate", ">=", dt.date(2024, 2, 3)),
                                       ("Category", "!=", None), ("ProductID", "in", (1, 2))])
    assert expression == "SKU = :1 AND CreatedDate >= :2 AND Category != null AND ProductID IN :3"
    assert params == ["A'1", "2024-02-03", [1, 2]]
    assert build_filter(None) == (None, [])


# --- parsing helpers -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [("6!3!2017", dt.date(2017, 3, 6)), ("31!12!1999", dt.date(1999, 12, 31)), ("29!2!2024", dt.date(2024, 2, 29)),
     ("06!03!2017", dt.date(2017, 3, 6)), ("0!0!0", None), ("00!00!0000", None), ("", None), (None, None)],
)
def test_parse_4d_date(text: str | None, expected: dt.date | None) -> None:
    assert parse_4d_date(text) == expected


@pytest.mark.parametrize("text", ["31!2!2020", "29!2!2023", "1!13!2020", "2017-03-06", "6/3/2017", "abc", "6!3"])
def test_parse_4d_date_rejects_invalid_values(text: str) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(text))):
        parse_4d_date(text)


@pytest.mark.parametrize(
    ("ms", "expected"),
    [(0, dt.time(0, 0)), (36_730_000, dt.time(10, 12, 10)), (86_399_999, dt.time(23, 59, 59, 999_000)),
     ("1500", dt.time(0, 0, 1, 500_000))],
)
def test_parse_4d_time(ms: int | str, expected: dt.time) -> None:
    assert parse_4d_time(ms) == expected


@pytest.mark.parametrize("ms", [-1, 86_400_000, 1.5, "noon", True])
def test_parse_4d_time_rejects_invalid_values(ms: object) -> None:
    with pytest.raises(ValueError, match="4D time"):
        parse_4d_time(ms)  # type: ignore[arg-type]
