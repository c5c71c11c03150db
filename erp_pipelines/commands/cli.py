"""The operator CLI: `erp-sync` or `python -m erp_pipelines.commands`.

`sync` runs through the Dagster instance (DAGSTER_HOME), so CLI runs show up in the UI like any other; while
it runs, stderr shows each table's rows, rate and elapsed time (`erp_pipelines.progress`). A failure is shown
as its message (a source error names its cause; only an unexpected error comes with its stack trace).
Exit codes: 0 success (rejected records never fail a run: they are quarantined and reported), 1 a sync,
an ERROR-severity asset check (reconciliation, integrity) or a connection test failed, 2 bad usage or
configuration (an entity of a source system that is not configured included).
"""

from __future__ import annotations

import csv
import datetime as dt
import importlib
import json
import os
import sys
from dataclasses import replace
from pathlib import Path

import click
import dagster as dg
import sqlalchemy as sa
from alembic import command

from erp_pipelines.app_db.engine import DatabaseUrlError, app_engine
from erp_pipelines.app_db.tables import source_change, sync_error, sync_run
from erp_pipelines.cadence import overdue_after
from erp_pipelines.catalog import CATALOG, UnknownEntityError, get_spec, system_of
from erp_pipelines.core.draft import DraftError
from erp_pipelines.core.source import ChangeRange, ChangeRangeError, PermanentSourceError, SettingError
from erp_pipelines.core.spec import TableSpec
from erp_pipelines.engine.audit import shown_key
from erp_pipelines.engine.drift import application_table_differences
from erp_pipelines.engine.sync import check_backfill
from erp_pipelines.engine.verify import Comparison, Difference, verify_table
from erp_pipelines.migrations import HERE as MIGRATIONS
from erp_pipelines.migrations import alembic_config
from erp_pipelines.progress import showing_progress
from erp_pipelines.scaffold import review_comments
from erp_pipelines.scaffold import write as write_scaffold
from erp_pipelines.sources.registry import SYSTEMS


def _engine() -> sa.Engine:
    try:
        return app_engine(os.environ.get("APP_DATABASE_URL", ""))
    except DatabaseUrlError as exc:
        raise click.UsageError(str(exc)) from None


@click.group()
def main() -> None:
    """Sync AS400 and 4D legacy tables into the application database."""


@main.command()
def migrate() -> None:
    """Create or upgrade the application tables (Alembic, to the newest revision)."""
    url = os.environ.get("APP_DATABASE_URL", "")
    if not url:
        raise click.UsageError("APP_DATABASE_URL is not set")
    command.upgrade(alembic_config(url), "head")
    click.echo("application database is at the newest revision")


def _specs(entities: tuple[str, ...]) -> list[TableSpec]:
    """The named entities (names or aliases, each once, in catalog order), or the whole catalog."""
    try:
        named = {get_spec(entity).entity for entity in entities}
    except UnknownEntityError as exc:
        raise click.UsageError(str(exc)) from None
    return [spec for spec in CATALOG if spec.entity in named] if entities else list(CATALOG)


def _configured(specs: list[TableSpec], *, named: bool) -> list[TableSpec]:
    """The specs whose source system is configured (`SourceResource.unconfigured_reason`). Without `--entity`
    an unconfigured system is skipped, saying so; a table named explicitly is refused (exit 2), since it could
    only fail, after minutes of retries, against a source nobody pointed the deployment at."""
    skipped: set[str] = set()
    for system in SYSTEMS:
        tables = [spec.entity for spec in specs if spec.source_system == system.name]
        if not tables:
            continue
        try:
            reason = system.resource(secrets_from_env_var=False).unconfigured_reason()
        except SettingError as exc:
            raise click.UsageError(str(exc)) from None
        if reason is None:
            continue
        if named:
            raise click.UsageError(f"{system.name} ({system.title}) is not configured: {reason}")
        click.echo(f"skipped {system.name} ({system.title}): not configured ({reason}); not synced: "
                   f"{', '.join(tables)}")
        skipped.update(tables)
    kept = [spec for spec in specs if spec.entity not in skipped]
    if specs and not kept:
        raise click.UsageError("nothing to run: the source systems of these tables are not configured (README "
                               "\"Configuration\")")
    return kept


def _failure_message(event: dg.DagsterEvent) -> str:
    """An expected failure (a `dg.Failure`: every source error) as its one-paragraph message; anything else
    (a bug) with its stack trace, which is what a developer needs to fix it."""
    data = event.step_failure_data
    if data.user_failure_data and data.user_failure_data.description:
        return data.user_failure_data.description.strip()
    return data.error.to_string().strip()


def _materialize(specs: list[TableSpec], mode: str, trigger: str, *, retry: bool,
                 changes: ChangeRange | None = None) -> None:
    """Runs the specs' assets (and their checks) through the Dagster instance, showing progress on stderr;
    prints each table's counts, each check's outcome and each failure's message; exits with the outcome."""
    from erp_pipelines.assets import BACKFILL_SINCE_TAG, BACKFILL_UNTIL_TAG, RETRY_TAG, SYNC_MODE_TAG, table_asset_key
    from erp_pipelines.checks import VERIFY_CHECK_NAME

    try:
        from erp_pipelines.definitions import defs
    except SettingError as exc:
        raise click.UsageError(str(exc)) from None
    keys = [table_asset_key(spec) for spec in specs]
    labels = {"__".join(key.path): key.to_user_string() for key in keys}
    instance = dg.DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else dg.DagsterInstance.ephemeral()
    job = defs.resolve_implicit_global_asset_job_def().get_subset(
        asset_selection=set(keys),
        asset_check_selection={check for check in defs.resolve_asset_graph().asset_check_keys
                               if check.asset_key in keys and check.name != VERIFY_CHECK_NAME},
    )
    tags = {SYNC_MODE_TAG: mode, "erp/trigger": trigger, RETRY_TAG: "policy" if retry else "never"}
    if changes is not None:
        tags[BACKFILL_SINCE_TAG] = changes.since
        if changes.until is not None:
            tags[BACKFILL_UNTIL_TAG] = changes.until
    try:
        with showing_progress():
            result = job.execute_in_process(
                run_config={"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}},
                instance=instance,
                tags=tags,
                raise_on_error=False,
            )
    except dg.DagsterInvalidConfigError as exc:
        problems = "; ".join(error.message.split("\n\nStack Trace")[0].strip() for error in exc.errors)
        raise click.UsageError(f"configuration: {problems}") from None
    for event in result.get_asset_materialization_events():
        metadata = event.materialization.metadata
        counts = ", ".join(
            f"{name}={metadata[name].value}"
            for name in ("processed", "created", "updated", "unchanged", "deleted", "rejected")
            if name in metadata
        )
        scope = "".join(f" {bound} {metadata[f'backfill_{bound}'].value}" for bound in ("since", "until")
                        if f"backfill_{bound}" in metadata)
        label = f"{metadata['status'].value} [{metadata['mode'].value}{scope}]"
        click.echo(f"{event.asset_key.to_user_string()}: {label} {counts}")
    failed_checks = 0
    for evaluation in result.get_asset_check_evaluations():
        severity = evaluation.severity.value if evaluation.severity else "ERROR"
        outcome = "passed" if evaluation.passed else f"FAILED ({severity})"
        detail = f": {evaluation.description}" if evaluation.description and not evaluation.passed else ""
        click.echo(f"  check {evaluation.asset_key.to_user_string()} {evaluation.check_name}: {outcome}{detail}")
        failed_checks += not evaluation.passed and severity == "ERROR"
    for event in result.all_events:
        if event.is_step_failure:
            click.echo(f"FAILED {labels.get(event.step_key, event.step_key)}: {_failure_message(event)}", err=True)
    click.echo(f"dagster run {result.run_id}: {'success' if result.success else 'failure'}"
               + (f", {failed_checks} check(s) failed" if failed_checks else ""))
    sys.exit(0 if result.success and not failed_checks else 1)


ENTITY_HELP = "(repeatable; an entity name or an alias such as `stock`: an unknown name lists them all)"
RETRY_HELP = ("Retry a table whose source failed by its retry policy (3 times, from 10 s on), as scheduled runs "
              "do; by default the CLI says at once what failed.")


@main.command()
@click.option("--entity", "entities", multiple=True, help=f"Entity to sync {ENTITY_HELP}; default: all "
              "configured source systems.")
@click.option("--full", is_flag=True, help="Re-read everything and soft-delete rows gone at the source.")
@click.option("--since", help="Backfill: re-read the rows changed from this change marker on, in the source's "
              "own terms (a local date or date and time such as 2026-11-01 or 2026-11-01T08:30:00, or a change "
              "stamp); the watermark stays where it is and nothing outside the range is deleted. Needs --entity.")
@click.option("--until", help="Backfill: the end of the range, excluded (default: no end).")
@click.option("--retry", is_flag=True, help=RETRY_HELP)
def sync(entities: tuple[str, ...], full: bool, since: str | None, until: str | None, retry: bool) -> None:
    """Materialize entities through the Dagster instance (their parents are not re-run)."""
    changes = _backfill_range(entities, full, since, until)
    specs = _configured(_specs(entities), named=bool(entities))
    if changes is None:
        _materialize(specs, "full" if full else "incremental", "cli", retry=retry)
        return
    for spec in specs:
        try:
            check_backfill(spec, system_of(spec).resource(secrets_from_env_var=False).source(), "backfill", changes)
        except ChangeRangeError as exc:
            raise click.UsageError(f"--{exc.bound}: {exc}") from None
        except (SettingError, PermanentSourceError) as exc:
            raise click.UsageError(str(exc)) from None
    _materialize(specs, "backfill", "cli_backfill", retry=retry, changes=changes)


def _backfill_range(entities: tuple[str, ...], full: bool, since: str | None, until: str | None
                    ) -> ChangeRange | None:
    """The range `--since`/`--until` ask for, refused when the options contradict each other (exit 2); what the
    values mean each source checks (`check_backfill`)."""
    if since is None:
        if until is not None:
            raise click.UsageError("--until needs --since: a backfill re-reads the changes from --since up to --until")
        return None
    if full:
        raise click.UsageError("--since cannot go with --full: a full sync reads everything, a backfill (--since) only "
                               "the changes in a range; choose one")
    if not entities:
        raise click.UsageError("--since needs --entity: the range is in each source's own change markers (a date on "
                               "one system, a stamp on another), so name the tables to backfill")
    return ChangeRange(since, until)


@main.command()
@click.option("--entity", "entities", multiple=True, help=f"Entity to replay {ENTITY_HELP}; default: every "
              "entity of a configured source system with open quarantined records.")
@click.option("--retry", is_flag=True, help=RETRY_HELP)
def replay(entities: tuple[str, ...], retry: bool) -> None:
    """Re-read only the quarantined records (once the source is fixed) and load the ones that now pass."""
    specs = _specs(entities)
    if not entities:
        with _engine().connect() as connection:
            open_entities = set(
                connection.execute(
                    sa.select(sync_error.c.entity).where(sync_error.c.resolved_at.is_(None)).distinct()
                ).scalars()
            )
        specs = [spec for spec in specs if spec.entity in open_entities]
        if not specs:
            click.echo("nothing to replay: no open quarantined records")
            return
    _materialize(_configured(specs, named=bool(entities)), "replay", "cli_replay", retry=retry)


@main.command()
def status() -> None:
    """Last run per entity: when, mode, status, counts and open quarantined records."""
    engine = _engine()
    latest = (
        sa.select(sync_run)
        .distinct(sync_run.c.entity)
        .order_by(sync_run.c.entity, sync_run.c.started_at.desc())
    )
    open_errors = (
        sa.select(sync_error.c.entity, sa.func.count())
        .where(sync_error.c.resolved_at.is_(None))
        .group_by(sync_error.c.entity)
    )
    with engine.connect() as connection:
        runs = {row.entity: row for row in connection.execute(latest)}
        quarantined = dict(connection.execute(open_errors).all())
        last_success = dict(
            connection.execute(
                sa.select(sync_run.c.entity, sa.func.max(sync_run.c.finished_at))
                .where(sync_run.c.status.in_(["COMPLETED", "PARTIALLY_COMPLETED"]))
                .group_by(sync_run.c.entity)
            ).all()
        )
    now = dt.datetime.now(dt.UTC)
    header = f"{'entity':<22}{'source':<11}{'last run (UTC)':<21}{'mode':<13}{'status':<21}{'freshness':<11}counts"
    click.echo(header)
    for spec in CATALOG:
        run = runs.get(spec.entity)
        if run is None:
            click.echo(f"{spec.entity:<22}{spec.source_system:<11}{'never':<21}")
            continue
        when = (run.finished_at or run.started_at).strftime("%Y-%m-%d %H:%M:%S")
        counts = (
            f"processed={run.processed} created={run.created} updated={run.updated} unchanged={run.unchanged} "
            f"deleted={run.deleted} rejected={run.rejected} open_quarantine={quarantined.get(spec.entity, 0)}"
        )
        synced = last_success.get(spec.entity)
        fresh = "fresh" if synced and now - synced <= overdue_after(spec) else "OVERDUE"
        click.echo(
            f"{spec.entity:<22}{spec.source_system:<11}{when:<21}{run.mode:<13}{run.status:<21}{fresh:<11}{counts}"
        )


@main.command(name="test-connection")
@click.option("--source", type=click.Choice([*(system.name for system in SYSTEMS), "all"]), default="all",
              show_default=True)
def test_connection(source: str) -> None:
    """Open a session to each source and say plainly whether it worked (no secrets printed).

    Each system says what its operators check before the first sync (`SourceResource.probe`); the IBM i, for
    instance, prints driver and server versions, the isolation, how text is read, TLS, and per whitelisted
    file its members, CCSIDs, journal and whether the change sensor's stamp query can use an index."""
    failed = False
    for system in SYSTEMS:
        if source not in ("all", system.name):
            continue
        try:
            probe = system.resource(secrets_from_env_var=False).probe(list(system.tables))
            click.echo(f"{system.name}: OK — {probe}")
        except Exception as exc:
            failed = True
            click.echo(f"{system.name}: FAILED — {type(exc).__name__}: {exc}", err=True)
    failed = _check_application_tables(source) or failed
    sys.exit(1 if failed else 0)


@main.command()
@click.option("--source", "source_name", required=True,
              type=click.Choice([system.name for system in SYSTEMS if system.scaffolded_package]),
              help="The source system whose catalog describes the table.")
@click.argument("table")
@click.option("--key", default="", help="Business key source column(s), comma-separated, when the catalog has none.")
@click.option("--into", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Directory of the generated module; default: the system's `scaffolded` package.")
@click.option("--migrations-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Directory of the generated migration; default: erp_pipelines/migrations/versions.")
@click.option("--application", "application_table", default=None,
              help="The application's own table to map onto (ERP_TARGET=application); compared at once.")
def scaffold(source_name: str, table: str, key: str, into: Path | None, migrations_dir: Path | None,
             application_table: str | None) -> None:
    """Write the spec, pandera model and migration of a new source TABLE from the source's own catalog.

    Each system reads its own catalog (`SourceResource.draft_table`; README "Adding a table"). Every guess is a
    `# REVIEW:` comment in the module: review, then commit it. The source's own permission to read the table
    (a whitelist) is never granted here: the output says what is left to do."""
    system = next(system for system in SYSTEMS if system.name == source_name)
    assert system.scaffolded_package is not None
    package = Path(importlib.import_module(system.scaffolded_package).__path__[0])
    words = ["erp-sync", "scaffold", "--source", source_name, table, *(["--key", key] if key else []),
             *(["--application", application_table] if application_table else [])]

    def drift(spec: TableSpec) -> list[str]:
        with _engine().connect() as connection:
            return application_table_differences(connection, spec.onto_application())

    try:
        draft = system.resource(secrets_from_env_var=False).draft_table(
            table, tuple(part.strip() for part in key.split(",") if part.strip()))
        written = write_scaffold(replace(draft, application=application_table), into or package,
                                 migrations_dir or MIGRATIONS / "versions", " ".join(words), CATALOG,
                                 application_drift=drift)
    except (DraftError, PermanentSourceError) as exc:  # bad names, unknown tables, no key; SettingError too
        raise click.UsageError(str(exc)) from None
    reviews = len(review_comments(written.module))
    click.echo(f"wrote {written.module} (entity {written.spec.entity}, {len(written.spec.columns)} columns, "
               f"{reviews} REVIEW comments)")
    click.echo(f"wrote {written.migration}")
    steps = ["review every REVIEW comment", "commit", *([draft.before_reading] if draft.before_reading else []),
             "erp-sync migrate"]
    click.echo(f"next: {', '.join(steps)}")


def _check_application_tables(source: str) -> bool:
    """The drift check of every application-owned target (`engine.drift`); True when one differs."""
    specs = [spec for spec in CATALOG if spec.writes_application and source in ("all", spec.source_system)]
    if not specs:
        return False
    failed = False
    with _engine().connect() as connection:
        for spec in specs:
            problems = application_table_differences(connection, spec)
            failed = failed or bool(problems)
            verdict = "matches the mapping" if not problems else "DIFFERS: " + "; ".join(problems)
            click.echo(f"application table {spec.target_table} ({spec.entity}): {verdict}", err=bool(problems))
    return failed


@main.command()
@click.option("--entity", required=True, help="Entity (or alias) whose quarantined records to list.")
@click.option("--limit", default=50, show_default=True)
@click.option("--all", "include_resolved", is_flag=True, help="Also list records that have loaded since.")
def errors(entity: str, limit: int, include_resolved: bool) -> None:
    """Quarantined records of an entity with the rules they failed."""
    try:
        entity = get_spec(entity).entity
    except UnknownEntityError as exc:
        raise click.UsageError(str(exc)) from None
    changed = source_change.alias("changed")
    query = (
        sa.select(sync_error, changed.c.changed_at, changed.c.changed_by, changed.c.job, changed.c.program)
        .outerjoin(changed, sa.and_(changed.c.entity == sync_error.c.entity,
                                    changed.c.source_key == sync_error.c.source_key))
        .where(sync_error.c.entity == entity).order_by(sync_error.c.id.desc()).limit(limit)
    )
    if not include_resolved:
        query = query.where(sync_error.c.resolved_at.is_(None))
    with _engine().connect() as connection:
        rows = connection.execute(query).all()
    for row in rows:
        state = "open" if row.resolved_at is None else f"resolved by sync_run {row.resolved_by_run_id}"
        click.echo(f"{shown_key(row.source_key)} (sync_run {row.sync_run_id}, {state}): {row.error_message}")
        if row.changed_by is not None:
            click.echo(f"  last changed at the source {row.changed_at} by {row.changed_by} "
                       f"(job {row.job}, program {row.program})")
    click.echo(f"{len(rows)} record(s)")


def _shown_difference(spec: TableSpec, difference: Difference) -> str:
    key = ", ".join(f"{name}={value!r}" for name, value in zip(spec.business_key, difference.key, strict=True))
    if difference.kind == "differs":
        changed = "; ".join(f"{name}: source {a!r}, target {b!r}" for name, a, b in
                            zip(difference.columns, difference.source, difference.target, strict=True))
        return f"differs ({key}): {changed}"
    return f"{difference.kind.replace('_', ' ')} ({key})"


def _difference_record(spec: TableSpec, difference: Difference) -> dict[str, object]:
    """One difference, JSON-safe: values as text (decimals keep their scale), NULL as null."""
    def text(values: tuple) -> dict[str, str | None]:
        names = difference.columns
        return {name: None if value is None else str(value) for name, value in zip(names, values, strict=False)}

    return {"kind": difference.kind,
            "key": {name: str(value) for name, value in zip(spec.business_key, difference.key, strict=True)},
            "columns": list(difference.columns), "source": text(difference.source), "target": text(difference.target)}


def _write_differences(path: Path, spec: TableSpec, comparison: Comparison) -> None:
    records = [_difference_record(spec, d) for d in comparison.differences]
    records += [{"kind": "quarantined", "key": {name: str(v) for name, v in zip(spec.business_key, key, strict=True)},
                 "columns": [], "source": {}, "target": {}} for key in comparison.quarantined_keys]
    if path.suffix.lower() == ".json":
        path.write_text(json.dumps(records, indent=1, ensure_ascii=False) + "\n")
        return
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["kind", "key", "columns", "source", "target"])
        for record in records:
            writer.writerow([record["kind"], json.dumps(record["key"], ensure_ascii=False), " ".join(record["columns"]),
                             json.dumps(record["source"], ensure_ascii=False),
                             json.dumps(record["target"], ensure_ascii=False)])


@main.command()
@click.option("--entity", required=True, help="Entity (or alias) to verify.")
@click.option("--sample", default=20, show_default=True, type=click.IntRange(min=0),
              help="How many differences to print (the full list goes to --output).")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write every difference (and every still-quarantined key) to FILE.csv or FILE.json.")
def verify(entity: str, sample: int, output: Path | None) -> None:
    """Compare source and target row by row on decoded values, writing to neither.

    Reports keys missing in the target, live keys the source no longer has, rows whose values differ (naming
    the columns) and records still quarantined (those are not differences: a sync left them out on purpose).
    Exit code 1 on any difference."""
    if output is not None and output.suffix.lower() not in (".csv", ".json"):
        raise click.UsageError(f"--output {output}: name a .csv or a .json file")
    try:
        spec = get_spec(entity)
    except UnknownEntityError as exc:
        raise click.UsageError(str(exc)) from None
    _configured([spec], named=True)
    try:
        source = system_of(spec).resource(secrets_from_env_var=False).source()
    except SettingError as exc:
        raise click.UsageError(str(exc)) from None
    comparison = verify_table(spec, source, _engine())
    counts = comparison.counts()
    click.echo(
        f"{spec.entity}: {comparison.source_records} source records, {comparison.target_live_rows} live target "
        f"rows, {comparison.quarantined_in_source} still quarantined; "
        + ", ".join(f"{kind.replace('_', ' ')}={count}" for kind, count in counts.items())
        + f"; {comparison.ranges_differing} of {comparison.ranges} key ranges differ")
    click.echo(f"source records = live target rows + open quarantine: {comparison.source_records} = "
               f"{comparison.target_live_rows - comparison.quarantined_live} + {comparison.quarantined_in_source} "
               f"({'holds' if comparison.invariant_holds else 'DOES NOT HOLD'})")
    for difference in comparison.differences[:sample]:
        click.echo(f"  {_shown_difference(spec, difference)}")
    if len(comparison.differences) > sample:
        click.echo(f"  … and {len(comparison.differences) - sample} more" + (f" (all in {output})" if output else
                                                                             " (--output FILE.csv for all)"))
    if output is not None:
        _write_differences(output, spec, comparison)
    click.echo("verified: source and target agree" if comparison.passed else
               f"DIFFERENT: {len(comparison.differences)} difference(s)")
    sys.exit(0 if comparison.passed else 1)


if __name__ == "__main__":
    main()
