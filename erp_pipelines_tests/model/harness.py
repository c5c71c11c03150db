"""What both model-based tests share: the Hypothesis profiles, reading what a run left in the application
database, and comparing it with the reference model key by key and value by value.

Profiles (`ERP_MODEL_PROFILE`): `fast` (default, part of scripts/test) and `long` (at least 20,000 steps per
source): `ERP_MODEL_PROFILE=long .venv/bin/python -m pytest erp_pipelines_tests/model -s`. Both are derandomized
(a fixed seed), so a run is reproducible and a failure shrinks to a minimal sequence of steps.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from hypothesis import HealthCheck, settings

from erp_pipelines.app_db.engine import PROJECT_SCHEMA, app_engine
from erp_pipelines.migrations import alembic_config
from erp_pipelines_tests.model.reference import Key, Outcome, TableModel, canonical_raw
from erp_pipelines_tests.support.sandbox import empty_app_database

PROFILES = {
    "fast": settings(max_examples=15, stateful_step_count=25),
    "long": settings(max_examples=800, stateful_step_count=60),
}
LONG_PROFILE_STEPS = 20_000
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


def profile_name() -> str:
    name = os.environ.get("ERP_MODEL_PROFILE", "fast")
    if name not in PROFILES:
        raise ValueError(f"ERP_MODEL_PROFILE={name!r}: choose one of {', '.join(PROFILES)}")
    return name


def run_time_limit() -> int:
    """pytest-timeout's limit for one model-based test: the suite's 600 s for the fast profile; none for the
    long one, which runs for as long as its 20,000 steps take (0 = no limit)."""
    return 0 if profile_name() == "long" else 600


def model_settings() -> settings:
    """The selected profile; derandomized, no example database (nothing written into the checkout)."""
    return settings(
        PROFILES[profile_name()],
        derandomize=True,
        database=None,
        deadline=None,
        print_blob=True,
        report_multiple_bugs=False,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )


@dataclass
class StepCounter:
    """Steps and examples run by one test, for the long profile's steps/second figure."""

    source: str
    steps: int = 0
    runs: int = 0
    examples: int = 0
    started: float = field(default_factory=time.perf_counter)

    def assert_enough_steps(self) -> None:
        """The long profile promises at least 20,000 steps per source; fail rather than claim it silently."""
        if profile_name() == "long":
            assert self.steps >= LONG_PROFILE_STEPS, f"only {self.steps} steps in the long profile"

    def report(self) -> str:
        elapsed = time.perf_counter() - self.started
        line = (f"model-based test {self.source} [{profile_name()}]: "
                f"{self.examples} examples, {self.steps} steps ({self.runs} sync runs) in {elapsed:.1f} s = "
                f"{self.steps / elapsed if elapsed else 0:.2f} steps/s")
        ARTIFACTS.mkdir(exist_ok=True)
        with (ARTIFACTS / "model_based.log").open("a") as log:
            log.write(line + "\n")
        return line


@dataclass(frozen=True)
class Entry:
    """One open quarantine entry as stored."""

    key: Key
    raw: str
    rules: tuple[str, ...]
    sync_run_id: int


def stored_key(value: object) -> Key:
    """The exact key of a quarantine entry (contract: a JSON array of the key values)."""
    if isinstance(value, list):
        return tuple(value)
    return ("<not a JSON array>", value)


def open_quarantine(
    connection: sa.Connection, entity: str, kinds: Mapping[str, Callable[[Any], Any]]
) -> dict[Key, list[Entry]]:
    entries: dict[Key, list[Entry]] = {}
    rows = connection.execute(sa.text(
        "select source_key, raw_record, rules, sync_run_id from sync_error "
        "where entity = :entity and resolved_at is null order by id"), {"entity": entity})
    for row in rows:
        key = stored_key(row.source_key)
        entries.setdefault(key, []).append(
            Entry(key, canonical_raw(row.raw_record, kinds), tuple(row.rules), row.sync_run_id))
    return entries


def target_rows(
    connection: sa.Connection, table: str, key: tuple[str, ...], values: tuple[str, ...]
) -> dict[Key, tuple[dict[str, Any], bool]]:
    """Every row of an application table (or of a query shaped like one): target key -> (values of the model's
    columns, live)."""
    columns = ", ".join(f'"{name}"' for name in (*key, *values))
    relation = f"{table} v" if table.startswith("(") else f'"{table}"'  # a table, or a query over several
    rows = connection.execute(sa.text(f"select {columns}, deleted_at is null as live from {relation}"))
    return {
        tuple(getattr(row, name) for name in key): ({name: getattr(row, name) for name in (*key, *values)}, row.live)
        for row in rows
    }


def last_run(connection: sa.Connection, entity: str) -> sa.Row | None:
    return connection.execute(sa.text(
        "select id, mode, status, processed, created, updated, unchanged, deleted, rejected, error_message "
        "from sync_run where entity = :entity order by id desc limit 1"), {"entity": entity}).first()


def terminate_run_session(engine: sa.Engine) -> None:
    """The run's own application-database session dies mid-run (the one idle inside its transaction), as the
    fault tests cut it with pg_terminate_backend; the harness's pooled sessions are idle outside one."""
    with engine.connect() as connection:
        connection.execute(sa.text(
            "select pg_terminate_backend(pid) from pg_stat_activity where usename = current_user "
            "and datname = current_database() and state = 'idle in transaction' and pid <> pg_backend_pid()"))


def rebuild_app_database(url: str) -> None:
    """The application schema from the migrations again, after a run left it broken (the test says which)."""
    with app_engine(url).begin() as connection:
        connection.exec_driver_sql(f"drop schema if exists {PROJECT_SCHEMA} cascade")  # the application's stay
    command.upgrade(alembic_config(url), "head")


def reset_app_database(url: str, expected_constraints: set[tuple[str, str]]) -> None:
    """Every application table emptied for the next example; the schema rebuilt first if a run broke it (the
    run that did was reported)."""
    with app_engine(url).connect() as connection:
        intact = constraints(connection) == expected_constraints
    if not intact:
        rebuild_app_database(url)
    empty_app_database(url)


def constraints(connection: sa.Connection) -> set[tuple[str, str]]:
    """The application tables' constraints: a run must never leave a table without one."""
    return {tuple(row) for row in connection.execute(sa.text(
        "select conrelid::regclass::text, conname from pg_constraint "
        f"where connamespace in ('public'::regnamespace, '{PROJECT_SCHEMA}'::regnamespace)"))}


def compare_target(model: TableModel, observed: dict[Key, tuple[dict[str, Any], bool]],
                   uncertain: set[Key]) -> tuple[list[str], int]:
    """Rule 2's target side: every live row with exactly its values, no other row live. Rows the contract
    leaves open (`uncertain`) take the observed state; returns the problems and how many of those were
    withdrawn (counted in `deleted`)."""
    problems: list[str] = []
    withdrawn = 0
    for key in uncertain:
        row = model.target.get(key)
        if key in observed and row is not None and row.live and not observed[key][1]:
            row.live = False
            withdrawn += 1
    for key in sorted(set(model.target) | set(observed), key=repr):
        row = model.target.get(key)
        seen = observed.get(key)
        expected_live = row is not None and row.live
        seen_live = seen is not None and seen[1]
        if expected_live != seen_live:
            wanted = f"live {row.values!r}" if expected_live else "not live"  # type: ignore[union-attr]
            found = f"live {seen[0]!r}" if seen_live else "not live"  # type: ignore[index]
            problems.append(f"{model.entity} {key}: expected {wanted}, found {found}")
        elif expected_live and row.values != seen[0]:  # type: ignore[union-attr,index]
            problems.append(f"{model.entity} {key}: expected {row.values!r}, found {seen[0]!r}")  # type: ignore[union-attr,index]
        elif row is None and seen is not None:
            problems.append(f"{model.entity} {key}: a row the source never had: {seen[0]!r}")
    return problems, withdrawn


def compare_quarantine(model: TableModel, observed: dict[Key, list[Entry]], run_id: int | None,
                       outcome: Outcome | None) -> list[str]:
    """Rule 2's quarantine side: the open entries are exactly the model's, each raw content once, and entries
    this run created name at least the rules the model expects."""
    problems: list[str] = []
    for key in sorted(set(model.quarantine) | set(observed), key=repr):
        expected = model.quarantine.get(key, set())
        entries = observed.get(key, [])
        raws = [entry.raw for entry in entries]
        if len(raws) != len(set(raws)):
            problems.append(f"{model.entity} {key}: the same raw record is open in the quarantine twice: {raws}")
        if set(raws) != expected:
            missing, extra = expected - set(raws), set(raws) - expected
            problems.append(f"{model.entity} {key}: quarantine differs; expected open and missing: {sorted(missing)}; "
                            f"open and not expected: {sorted(extra)}")
        for entry in entries:
            required = outcome.required_rules.get((key, entry.raw), set()) if outcome else set()
            if entry.sync_run_id == run_id and not all(any(rule.startswith(prefix) for rule in entry.rules)
                                                       for prefix in required):
                problems.append(f"{model.entity} {key}: rules {list(entry.rules)} lack {sorted(required)}")
    return problems


def compare_counts(run: sa.Row | None, outcome: Outcome, withdrawn: int) -> list[str]:
    """Rule 1 on the sync_run row, and each count against the model's."""
    if run is None:
        return ["no sync_run row"]
    problems = []
    if run.status not in ("COMPLETED", "PARTIALLY_COMPLETED"):
        problems.append(f"sync_run {run.id} status {run.status}: {run.error_message}")
    if run.processed != run.created + run.updated + run.unchanged + run.rejected:
        problems.append(f"sync_run {run.id}: processed={run.processed} != created={run.created} + updated="
                        f"{run.updated} + unchanged={run.unchanged} + rejected={run.rejected}")
    expected = {"processed": outcome.processed, "created+updated": outcome.written, "unchanged": outcome.unchanged,
                "rejected": outcome.rejected, "deleted": outcome.deleted + withdrawn}
    found = {"processed": run.processed, "created+updated": run.created + run.updated, "unchanged": run.unchanged,
             "rejected": run.rejected, "deleted": run.deleted}
    if expected != found:
        problems.append(f"sync_run {run.id} counts {found}, model {expected}")
    return problems


@dataclass(frozen=True)
class TableView:
    """Where the model finds one entity in the application database and how its raw records compare."""

    entity: str
    table: str
    key: tuple[str, ...]
    values: tuple[str, ...]
    raw_kinds: Mapping[str, Callable[[Any], Any]]


class ModelChecks:
    """The checks after every run, shared by both sources' state machines."""

    engine: sa.Engine
    models: dict[str, TableModel]
    views: dict[str, TableView]
    expected_constraints: set[tuple[str, str]]

    def observe(self, entity: str) -> tuple[dict, dict, sa.Row | None, set[tuple[str, str]]]:
        view = self.views[entity]
        with self.engine.connect() as connection:
            return (target_rows(connection, view.table, view.key, view.values),
                    open_quarantine(connection, entity, view.raw_kinds), last_run(connection, entity),
                    constraints(connection))

    def check_run(self, entity: str, described: str, outcome: Outcome, problems: list[str]) -> None:
        """After a run that returned: the model and the database agree (contract 1-7), the schema is whole."""
        model = self.models[entity]
        rows, quarantine, run, present = self.observe(entity)
        found, withdrawn = compare_target(model, rows, outcome.uncertain_live)
        problems = [*problems, *found, *compare_quarantine(model, quarantine, run.id if run else None, outcome),
                    *compare_counts(run, outcome, withdrawn)]
        if lost := self.expected_constraints - present:
            problems.append(f"the run left the application database without its constraints {sorted(lost)}")
        assert not problems, f"after the {described}:\n  " + "\n  ".join(problems)

    def check_failed_run(self, entity: str, described: str) -> None:
        """Contract 11: a failed run commits nothing (target and quarantine as before) and says FAILED."""
        model = self.models[entity]
        rows, quarantine, run, _ = self.observe(entity)
        problems, _ = compare_target(model, rows, set())
        problems += compare_quarantine(model, quarantine, None, None)
        if run is None or run.status != "FAILED":
            problems.append(f"the failed run's sync_run says {run.status if run else 'nothing'}")
        assert not problems, f"after the {described} (failed):\n  " + "\n  ".join(problems)
