"""What a backfill refuses before it reads anything: each source's range rules and the engine's own (no service)."""

from __future__ import annotations

import pytest

from erp_pipelines.catalog import get_spec
from erp_pipelines.core.source import ChangeRange, ChangeRangeError
from erp_pipelines.engine.sync import STRATEGIES, check_backfill
from erp_pipelines.sources.as400.adapter import As400Source, stamp_range
from erp_pipelines.sources.as400.connection import As400Settings
from erp_pipelines.sources.legacy_4d.adapter import LARGEST_STAMP, Legacy4DSource
from erp_pipelines.sources.legacy_4d.adapter import stamp_range as global_stamp_range

AS400 = As400Source(As400Settings(allowed_tables="PRODUCTLIB.PRICING", server="ibmi.example.com"))
LEGACY_4D = Legacy4DSource(lambda: pytest.fail("no 4D request may be sent to check a range"))  # type: ignore[arg-type,return-value]


def test_the_backfill_strategy_reads_a_range_and_concludes_nothing_else() -> None:
    backfill = STRATEGIES["backfill"]
    assert backfill.reads_range and not backfill.reads_everything and not backfill.reads_open_keys_only
    assert not backfill.moves_watermark and not backfill.applies_reported_deletions and not backfill.may_turn_full
    assert not backfill.sees_every_open_key  # an open quarantine key outside the range is not "gone"


def test_as400_range_is_a_pair_of_cyymmdd_hhmmss_stamps() -> None:
    assert stamp_range(ChangeRange("2026-11-01")) == ((1261101, 0), None)
    assert stamp_range(ChangeRange("1900-01-01", "2899-12-31T23:59:59")) == ((101, 0), (9991231, 235959))
    assert stamp_range(ChangeRange("2026-11-01T08:30:15", "2026-11-02")) == ((1261101, 83015), (1261102, 0))


def test_4d_range_is_a_pair_of_global_stamps() -> None:
    assert global_stamp_range(ChangeRange("120", "4000")) == (120, 4000)
    assert global_stamp_range(ChangeRange("0")) == (0, None)


@pytest.mark.parametrize(("entity", "since", "until", "bound", "message"), [
    ("product_pricing", "1899-12-31", None, "since",
     "cannot be a CYYMMDD change stamp, which covers 1900-01-01 to 2899-12-31"),
    ("product_pricing", "2026-11-01", "2900-01-01", "until", "cannot be a CYYMMDD change stamp"),
    ("product_pricing", "2026-11-01", "2026-10-31", "until",
     "until 2026-10-31 is not after since 2026-11-01: the range is empty"),
    ("product_pricing", "2026-11-01", "2026-11-01", "until", "the range is empty"),
    ("product_pricing", "yesterday", None, "since", r"'yesterday' is not a date \(YYYY-MM-DD\)"),
    ("product_pricing", "2026-11-01T00:00:00+01:00", None, "since", "carries a UTC offset"),
    ("product_pricing", "2026-13-01", None, "since", "is not a date"),
    ("erp_order", "2026-11-01", None, "since",
     "'2026-11-01' is not a 4D global stamp: 4D marks changes with __GlobalStamp"),
    ("erp_order", "-5", None, "since", "is not a 4D global stamp"),
    ("erp_order", "10", str(LARGEST_STAMP + 1), "until", "is not a 4D global stamp"),
    ("erp_order", "500", "500", "until", "until 500 is not after since 500"),
])
def test_a_range_the_source_cannot_read_is_refused_naming_the_bound(
    entity: str, since: str, until: str | None, bound: str, message: str
) -> None:
    source = AS400 if entity == "product_pricing" else LEGACY_4D
    with pytest.raises(ChangeRangeError, match=message) as refused:
        check_backfill(get_spec(entity), source, "backfill", ChangeRange(since, until))
    assert refused.value.bound == bound


def test_a_table_without_change_tracking_cannot_be_backfilled() -> None:
    with pytest.raises(ChangeRangeError, match="erp_category: Products has no change tracking") as refused:
        check_backfill(get_spec("erp_category"), LEGACY_4D, "backfill", ChangeRange("10"))
    assert refused.value.bound == "since"


@pytest.mark.parametrize(("mode", "changes", "message"), [
    ("backfill", None, "a backfill needs the start of its range"),
    ("backfill", ChangeRange("  "), "a backfill needs the start of its range"),
    ("full", ChangeRange("2026-11-01"), r"a range \(since 2026-11-01\) is only read by a backfill, not by a full"),
    ("incremental", ChangeRange("2026-11-01"), "not by a incremental sync"),
])
def test_a_range_and_the_backfill_mode_go_together(mode: str, changes: ChangeRange | None, message: str) -> None:
    with pytest.raises(ChangeRangeError, match=message):
        check_backfill(get_spec("product_pricing"), AS400, mode, changes)
