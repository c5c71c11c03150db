"""The operator CLI: `erp-sync` or `python -m erp_pipelines.commands`.

`sync` runs through the Dagster instance (DAGSTER_HOME), so CLI runs show up in the UI like any other.
Exit codes: 0 success (rejected records never fail a run: they are quarantined and reported), 1 a sync,
an ERROR-severity asset check (reconciliation, integrity) or a connection test failed, 2 bad usage or
configuration.
"""

from __future__ import annotations

import datetime as dt
import os
import sys

import click
import dagster as dg
import sqlalchemy as sa
from alembic import command

from erp_pipelines.app_db.engine import DatabaseUrlError, app_engine
from erp_pipelines.app_db.tables import sync_error, sync_run
from erp_pipelines.cadence import overdue_after
from erp_pipelines.catalog import CATALOG, UnknownEntityError, get_spec
from erp_pipelines.engine.audit import shown_key
from erp_pipelines.migrations import alembic_config
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


def _specs(entities: tuple[str, ...]) -> list:
    try:
        return [get_spec(entity) for entity in entities] if entities else list(CATALOG)
    except UnknownEntityError as exc:
        raise click.UsageError(str(exc)) from None


def _materialize(specs: list, mode: str, trigger: str) -> None:
    """Runs the specs' assets (and their checks) through the Dagster instance; exits with the outcome."""
    from erp_pipelines.assets import SYNC_MODE_TAG, table_asset_key
    from erp_pipelines.definitions import defs

    keys = [table_asset_key(spec) for spec in specs]
    instance = dg.DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else dg.DagsterInstance.ephemeral()
    job = defs.resolve_implicit_global_asset_job_def().get_subset(
        asset_selection=set(keys),
        asset_check_selection={check for check in defs.resolve_asset_graph().asset_check_keys
                               if check.asset_key in keys},
    )
    result = job.execute_in_process(
        run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
        instance=instance,
        tags={SYNC_MODE_TAG: mode, "erp/trigger": trigger},
        raise_on_error=False,
    )
    for event in result.get_asset_materialization_events():
        metadata = event.materialization.metadata
        counts = ", ".join(
            f"{name}={metadata[name].value}"
            for name in ("processed", "created", "updated", "unchanged", "deleted", "rejected")
            if name in metadata
        )
        label = f"{metadata['status'].value} [{metadata['mode'].value}]"
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
            click.echo(f"FAILED {event.step_key}: {event.step_failure_data.error.message.strip()}", err=True)
    click.echo(f"dagster run {result.run_id}: {'success' if result.success else 'failure'}"
               + (f", {failed_checks} check(s) failed" if failed_checks else ""))
    sys.exit(0 if result.success and not failed_checks else 1)


@main.command()
@click.option("--entity", "entities", multiple=True, help="Entity to sync (repeatable); default: all.")
@click.option("--full", is_flag=True, help="Re-read everything and soft-delete rows gone at the source.")
def sync(entities: tuple[str, ...], full: bool) -> None:
    """Materialize entities through the Dagster instance (their parents are not re-run)."""
    _materialize(_specs(entities), "full" if full else "incremental", "cli")


@main.command()
@click.option("--entity", "entities", multiple=True, help="Entity to replay (repeatable); default: every "
              "entity with open quarantined records.")
def replay(entities: tuple[str, ...]) -> None:
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
    _materialize(specs, "replay", "cli_replay")


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
    sys.exit(1 if failed else 0)


@main.command()
@click.option("--entity", required=True, help="Entity whose quarantined records to list.")
@click.option("--limit", default=50, show_default=True)
@click.option("--all", "include_resolved", is_flag=True, help="Also list records that have loaded since.")
def errors(entity: str, limit: int, include_resolved: bool) -> None:
    """Quarantined records of an entity with the rules they failed."""
    try:
        get_spec(entity)
    except UnknownEntityError as exc:
        raise click.UsageError(str(exc)) from None
    query = sa.select(sync_error).where(sync_error.c.entity == entity).order_by(sync_error.c.id.desc()).limit(limit)
    if not include_resolved:
        query = query.where(sync_error.c.resolved_at.is_(None))
    with _engine().connect() as connection:
        rows = connection.execute(query).all()
    for row in rows:
        state = "open" if row.resolved_at is None else f"resolved by sync_run {row.resolved_by_run_id}"
        click.echo(f"{shown_key(row.source_key)} (sync_run {row.sync_run_id}, {state}): {row.error_message}")
    click.echo(f"{len(rows)} record(s)")


if __name__ == "__main__":
    main()
