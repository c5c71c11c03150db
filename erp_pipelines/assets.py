"""Software-defined assets: one per application table, built by a factory over the catalog."""


from typing import Any

import dagster as dg
import pandera.pandas as pa_pandas
import sqlalchemy as sa
from pydantic import Field

from erp_pipelines.cadence import freshness_policy
from erp_pipelines.catalog import CATALOG, system_of
from erp_pipelines.core.source import ChangeRange, PermanentSourceError, SyncSourceError
from erp_pipelines.core.spec import TableSpec
from erp_pipelines.engine.sync import SYNC_MODES, SyncReport, run_sync
from erp_pipelines.engine.target import target_of
from erp_pipelines.progress import ProgressReporter
from erp_pipelines.resources import AppDatabaseResource
from erp_pipelines.sources.system import resource_of

SYNC_MODE_TAG = "erp/sync_mode"
BACKFILL_SINCE_TAG = "erp/backfill_since"
BACKFILL_UNTIL_TAG = "erp/backfill_until"
"""The range of a run tagged `erp/sync_mode=backfill` (what the CLI's `--since`/`--until` set)."""
RETRY_TAG = "erp/retry"
"""'never': a table failing on its source is not retried (the CLI's default); otherwise RETRY_POLICY applies."""
OWNERS = ["team:erp-integration"]
RETRY_POLICY = dg.RetryPolicy(max_retries=3, delay=10, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)
REJECTED_SHARE_CHECK_NAME = "rejected_share_within_limit"


class SyncConfig(dg.Config):
    """Run configuration of a table asset; the mode can also come from the run tag `erp/sync_mode`."""

    mode: str | None = Field(
        default=None, description="'incremental', 'full', 'replay' (quarantined records) or 'backfill' (a range of "
                                  "changes, see since/until); overrides the run tag"
    )
    since: str | None = Field(
        default=None, description="backfill: first change marker re-read, in the source's own terms (a date such as "
                                  f"2026-11-01, or a stamp); overrides the run tag {BACKFILL_SINCE_TAG}"
    )
    until: str | None = Field(
        default=None, description="backfill: the end of the range, excluded (default: no end); overrides the run tag "
                                  f"{BACKFILL_UNTIL_TAG}"
    )


def change_range(since: str | None, until: str | None) -> ChangeRange | None:
    """The range a run's settings name (run config over run tags), or None when they name none."""
    if since is None and until is None:
        return None
    return ChangeRange(since or "", until)


def source_asset_key(spec: TableSpec) -> dg.AssetKey:
    return dg.AssetKey([spec.source_system, *spec.source_table.split(".")])


def table_asset_key(spec: TableSpec) -> dg.AssetKey:
    """`app/<table>` for a project-owned table; an application table may be written by one spec per source
    system (4D products and AS400 items share `products_product`), so its key names the source too."""
    if spec.writes_application:
        return dg.AssetKey(["application", spec.source_system, spec.target_table])
    return dg.AssetKey(["app", spec.target_table])


def describe_check(check: pa_pandas.Check) -> str:
    """A pandera check as a short constraint the UI can show in full, e.g. 'length <= 15', '>= 0', 'not blank'."""
    stats = check.statistics or {}
    if check.name == "str_length":
        if stats.get("exact_value") is not None:
            return f"length = {stats['exact_value']}"
        low, high = stats.get("min_value"), stats.get("max_value")
        return f"length {low}..{high}" if low is not None and high is not None else (
            f"length <= {high}" if high is not None else f"length >= {low}")
    if check.name == "in_range":
        return f"{stats.get('min_value')} <= value <= {stats.get('max_value')}"
    operators = {"greater_than": ">", "greater_than_or_equal_to": ">=", "less_than": "<",
                 "less_than_or_equal_to": "<="}
    if check.name in operators:
        return f"{operators[check.name]} {stats.get('min_value', stats.get('max_value'))}"
    if check.name == "isin":
        return "one of " + ", ".join(map(str, stats.get("allowed_values", [])))
    if check.name == "str_matches":
        return f"matches {stats.get('pattern')}"
    return check.name.replace("_", " ")


def column_schema(model: type[pa_pandas.DataFrameModel]) -> dg.TableSchema:
    """The pandera model as Dagster's column schema (types, nullability, uniqueness, checks)."""
    schema = model.to_schema()
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                name=name,
                type=str(column.dtype),
                description=column.description,
                constraints=dg.TableColumnConstraints(
                    nullable=column.nullable,
                    unique=column.unique,
                    other=[describe_check(check) for check in column.checks],
                ),
            )
            for name, column in schema.columns.items()
        ]
    )


def source_asset_spec(spec: TableSpec) -> dg.AssetSpec:
    return dg.AssetSpec(
        key=source_asset_key(spec),
        description=f"{spec.source_table} in the {system_of(spec).title} (read-only source).",
        group_name=spec.source_system,
        kinds={system_of(spec).kind},
        owners=OWNERS,
        metadata={"source_columns": ", ".join(spec.source_columns)},
    )


def sync_metadata(report: SyncReport, live_rows: int) -> dict[str, Any]:
    """What the run did, in the form the UI shows: counts, mode, watermark, speed, rejected sample."""
    metadata: dict[str, Any] = {
        "dagster/row_count": live_rows,
        **report.counts(),
        "mode": report.mode,
        "status": report.status,
        "sync_run_id": report.sync_run_id,
        "watermark": dg.MetadataValue.json(report.watermark_after or {}),
        "duration_seconds": dg.MetadataValue.float(round(report.duration_seconds, 3)),
        "rows_per_second": dg.MetadataValue.float(round(report.rows_per_second, 1)),
        **({"backfill_since": report.backfill.since, "backfill_until": report.backfill.until or "(open)"}
           if report.backfill else {}),
        "withdrawn_orphans": report.withdrawn,
        "quarantine_entries_closed": report.resolved,
        "open_quarantined_records": report.open_quarantined,
        **{f"source/{name}": value for name, value in report.notes.items()},
    }
    if report.rejected_sample:
        metadata["rejected_records"] = dg.MetadataValue.table(
            records=[dg.TableRecord(row) for row in report.rejected_sample],
            schema=dg.TableSchema(
                columns=[dg.TableColumn("source_key", "string"), dg.TableColumn("reason", "string")]
            ),
        )
    return metadata


def rejected_share_result(report: SyncReport) -> dg.AssetCheckResult:
    """The rejected share as a check: reported, never a reason to stop the valid rows or downstream tables."""
    return dg.AssetCheckResult(
        check_name=REJECTED_SHARE_CHECK_NAME,
        passed=not report.rejected_share_exceeded,
        severity=dg.AssetCheckSeverity.WARN,
        description=report.rejected_share_message() if report.rejected_share_exceeded else None,
        metadata={
            "open_quarantined_records": report.open_quarantined,
            "share_of_table": dg.MetadataValue.float(round(report.table_rejected_share, 4)),
            "allowed_share": dg.MetadataValue.float(report.max_rejected_share),
            "rejected_this_run": report.rejected,
        },
    )


def live_row_count(engine: sa.Engine, spec: TableSpec) -> int:
    with engine.connect() as connection:
        return target_of(spec).count_live(connection)


def build_table_asset(spec: TableSpec) -> dg.AssetsDefinition:
    """The asset of one application table; the engine does the work, this layer reports it."""

    @dg.asset(
        key=table_asset_key(spec),
        deps=[source_asset_key(spec), *(table_asset_key(parent) for parent in spec.parents)],
        description=spec.description,
        group_name=spec.source_system,
        kinds={"postgres", system_of(spec).kind},
        owners=OWNERS,
        tags={"cadence": spec.cadence},
        pool=spec.source_system,
        freshness_policy=freshness_policy(spec),
        retry_policy=RETRY_POLICY,
        required_resource_keys={spec.source_system, "app_db"},
        check_specs=[dg.AssetCheckSpec(
            REJECTED_SHARE_CHECK_NAME, asset=table_asset_key(spec),
            description="Records held in quarantine stay within the allowed share of the table; a table over it "
                        "still loads every valid row and its downstream tables still run.",
        )],
        metadata={
            "dagster/table_name": f"erp_app.{target_of(spec).qualified_name}",
            "dagster/column_schema": column_schema(spec.model),
            "business_key": ", ".join(spec.business_key),
            "source_table": spec.source_table,
            "cadence": spec.cadence,
        },
    )
    def _table_asset(context: dg.AssetExecutionContext, config: SyncConfig) -> dg.MaterializeResult:
        tags = context.run.tags
        mode = config.mode or tags.get(SYNC_MODE_TAG, "incremental")
        if mode not in SYNC_MODES:
            raise dg.Failure(
                f"sync mode {mode!r} (tag {SYNC_MODE_TAG}) must be one of {', '.join(map(repr, SYNC_MODES))}",
                allow_retries=False,
            )
        changes = change_range(config.since or tags.get(BACKFILL_SINCE_TAG),
                               config.until or tags.get(BACKFILL_UNTIL_TAG))
        app_db: AppDatabaseResource = context.resources.app_db
        engine = app_db.engine()
        try:
            source = resource_of(context.resources, system_of(spec)).source()
            report = run_sync(spec, source, engine, mode=mode, changes=changes, dagster_run_id=context.run.run_id,
                              on_batch=ProgressReporter(context.log))
        except SyncSourceError as exc:
            # A source failure is reported by its message alone (it names the cause; a stack trace adds
            # nothing). Permanent ones are not retried: a refused login retried is one more failed sign-on
            # (IBM i disables the profile after QMAXSIGN of them), and drift, whitelist, names or a bad
            # watermark stay as they are; the others (licenses taken, a network drop) follow RETRY_POLICY
            # unless the run says otherwise (the CLI, where an operator waits for the answer).
            retry = context.run.tags.get(RETRY_TAG, "policy") != "never"
            raise dg.Failure(description=str(exc),
                             allow_retries=retry and not isinstance(exc, PermanentSourceError)) from None
        context.log.info(report.summary())
        if report.rejected_share_exceeded:
            context.log.warning(report.rejected_share_message())
        return dg.MaterializeResult(
            metadata=sync_metadata(report, live_row_count(engine, spec)),
            check_results=[rejected_share_result(report)],
        )

    return _table_asset


source_assets = list({source_asset_key(spec): source_asset_spec(spec) for spec in CATALOG}.values())
table_assets = [build_table_asset(spec) for spec in CATALOG]
