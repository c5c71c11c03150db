"""`$filter` is built from placeholders only, its values in `$params`, decided before and without a server."""

from __future__ import annotations

import datetime as dt

from erp_pipelines.sources.legacy_4d.filters import build_filter


def test_build_filter_uses_placeholders_only() -> None:
    expression, params = build_filter([("SKU", "=", "A'1"), ("CreatedDate", ">=", dt.date(2024, 2, 3)),
                                       ("Category", "!=", None), ("ProductID", "in", (1, 2))])
    assert expression == "SKU = :1 AND CreatedDate >= :2 AND Category != null AND ProductID IN :3"
    assert params == ["A'1", "2024-02-03", [1, 2]]
    assert build_filter(None) == (None, [])
