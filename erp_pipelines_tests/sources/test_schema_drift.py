"""The schema-drift rule every adapter applies: missing columns and unknown ones are drift, named; columns a
spec declares as ignored are known; a derived reference table owns only the column it reads."""

from __future__ import annotations

from dataclasses import replace

import pytest

from erp_pipelines.catalog import get_spec
from erp_pipelines.core.source import SchemaDriftError, require_source_columns

STOCK = get_spec("product_stock")
CATEGORY = get_spec("erp_category")


@pytest.mark.parametrize(
    ("present", "complete", "problem"),
    [
        ([*STOCK.source_columns], True, None),
        ([*STOCK.source_columns, "COLOR"], False, None),
        ([c for c in STOCK.source_columns if c not in ("BIN", "LOTCTL")], False,
         "column(s) BIN, LOTCTL expected by the 'product_stock' spec are missing at the source"),
        ([*STOCK.source_columns, "COLOR", "WEIGHT"], True,
         "column(s) COLOR, WEIGHT at the source are not in the 'product_stock' spec"),
        ([*(c for c in STOCK.source_columns if c != "BIN"), "COLOR"], True,
         "column(s) BIN expected by the 'product_stock' spec are missing at the source; "
         "column(s) COLOR at the source are not in the 'product_stock' spec"),
    ],
    ids=["same", "partial list ignores extras", "missing", "unexpected", "both"],
)
def test_drift_is_named(present: list[str], complete: bool, problem: str | None) -> None:
    if problem is None:
        require_source_columns(STOCK, present, "INVENTORYLIB.INVENTORY", complete=complete)
        return
    with pytest.raises(SchemaDriftError, match=r"schema drift in INVENTORYLIB\.INVENTORY: ") as caught:
        require_source_columns(STOCK, present, "INVENTORYLIB.INVENTORY", complete=complete)
    assert problem in str(caught.value)


def test_ignored_columns_are_known_but_still_missing_ones_are_drift() -> None:
    wide = replace(STOCK, ignored_source_columns=("COLOR", "WEIGHT"))
    require_source_columns(wide, [*STOCK.source_columns, "COLOR", "WEIGHT"], "INVENTORYLIB.INVENTORY", complete=True)
    assert "COLOR" not in wide.source_columns  # known, never read
    with pytest.raises(SchemaDriftError, match="SIZE at the source are not in the 'product_stock' spec"):
        require_source_columns(wide, [*STOCK.source_columns, "COLOR", "SIZE"], "INVENTORYLIB.INVENTORY", complete=True)


def test_a_derived_reference_table_owns_only_its_column() -> None:
    require_source_columns(CATEGORY, ["ProductID", "Category", "Name"], "4D Products", complete=True)
