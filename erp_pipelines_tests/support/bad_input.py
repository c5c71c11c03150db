"""What the two bad-input scenarios (AS400 and 4D) share: the record of every phase, how a phase is read
back from the application database, and the checks that hold for either source."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from erp_pipelines.core.spec import TableSpec
from erp_pipelines.engine.sync import SyncReport

Quarantine = dict[tuple[str, str], list[sa.Row]]


@dataclass(repr=False)
class Scenario:
    """What every phase did, read once so each case's test only looks."""

    reports: dict[str, dict[str, SyncReport]] = field(default_factory=dict)
    source_rows: dict[str, int] = field(default_factory=dict)
    live_rows: dict[str, int] = field(default_factory=dict)
    quarantined: Quarantine = field(default_factory=dict)
    open_after_rerun: int = 0
    found: dict[str, dict[str, int]] = field(default_factory=dict)
    closed: Quarantine = field(default_factory=dict)
    failed_runs: int = 0

    def phase_of(self, sync_run_id: int) -> str:
        return next(phase for phase, reports in self.reports.items()
                    if any(report.sync_run_id == sync_run_id for report in reports.values()))


class PhaseReader:
    """Reads what a phase left in the application database, on one connection."""

    def __init__(self, connection: sa.Connection, played: Scenario) -> None:
        self.connection = connection
        self.played = played

    def scalar(self, sql: str, **params: Any) -> Any:
        return self.connection.execute(sa.text(sql), params).scalar_one()

    def quarantine(self) -> Quarantine:
        """Entries by entity and a label of their exact key: its values joined by '|' (the scenarios' keys
        hold no '|'; the quarantine itself stores the values apart)."""
        entries: Quarantine = {}
        for row in self.connection.execute(sa.text("select * from sync_error order by id")):
            label = "|".join(str(part) for part in row.source_key)
            entries.setdefault((row.entity, label), []).append(row)
        return entries

    def count_live(self, kind: str, when: str, table: str, values: dict[str, Any]) -> None:
        """How many live target rows hold exactly these values (the case's record), after `when`."""
        match = " and ".join(f"{name} = :{name}" for name in values)
        self.played.found.setdefault(kind, {})[when] = self.scalar(
            f"select count(*) from {table} where deleted_at is null and {match}", **values)

    def after_first_run(self, specs: Iterable[TableSpec], count_source_rows: Callable[[TableSpec], int]) -> None:
        self.played.source_rows = {spec.entity: count_source_rows(spec) for spec in specs}
        self.played.live_rows = {spec.entity: self.scalar(f"select count(*) from {spec.target_table}")
                                 for spec in specs}
        self.played.quarantined = self.quarantine()

    def after_rerun(self) -> None:
        self.played.open_after_rerun = self.scalar("select count(*) from sync_error where resolved_at is null")
        self.connection.commit()

    def at_the_end(self) -> None:
        self.played.closed = self.quarantine()
        self.played.failed_runs = self.scalar(
            "select count(*) from sync_run where status not in ('COMPLETED', 'PARTIALLY_COMPLETED')")


def assert_good_rows_loaded(scenario: Scenario, spec: TableSpec, rejected_here: int) -> None:
    """The first run rejected exactly the planted records of this table and loaded every other row."""
    report = scenario.reports["first run"][spec.entity]
    assert report.rejected == rejected_here
    assert report.processed == scenario.source_rows[spec.entity]
    assert scenario.live_rows[spec.entity] == report.created == report.processed - rejected_here


def assert_quarantined_with_reason(entry: sa.Row, rule: str, reason: str, spec: TableSpec) -> None:
    """The entry names the failed rule and the column, and keeps the whole raw record for the operator."""
    assert any(failed.startswith(rule) for failed in entry.rules), entry.rules
    assert reason in entry.error_message
    assert set(entry.raw_record) >= set(spec.source_columns)


def assert_rerun_quarantined_nothing_twice(scenario: Scenario, still_bad: int) -> None:
    for report in scenario.reports["full rerun"].values():
        assert report.rejected_new == 0
    assert scenario.open_after_rerun == still_bad
