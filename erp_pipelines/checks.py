"""Asset checks of the application tables: blocking integrity and source reconciliation."""


import dagster as dg
import sqlalchemy as sa

from erp_pipelines.app_db.tables import sync_error
from erp_pipelines.assets import table_asset_key
from erp_pipelines.catalog import CATALOG
from erp_pipelines.catalog.spec import TableSpec
from erp_pipelines.resources import AppDatabaseResource

INTEGRITY_CHECK_NAME = "live_rows_present_and_unique"
RECONCILIATION_CHECK_NAME = "reconciles_with_source"


def _live_counts(engine: sa.Engine, spec: TableSpec) -> tuple[int, int]:
    key = ", ".join(f'"{c}"' for c in spec.business_key)
    with engine.connect() as connection:
        total, distinct = connection.exec_driver_sql(
            f'select count(*), count(distinct ({key})) from "{spec.target_table}" where deleted_at is null'
        ).one()
    return int(total), int(distinct)


def build_integrity_check(spec: TableSpec) -> dg.AssetChecksDefinition:
    """Blocking: the table must have live rows and no business key twice; downstream waits otherwise."""

    @dg.asset_check(
        asset=table_asset_key(spec),
        name=INTEGRITY_CHECK_NAME,
        blocking=True,
        description=f"{spec.target_table} has live rows and {', '.join(spec.business_key)} is unique.",
    )
    def _integrity(app_db: AppDatabaseResource) -> dg.AssetCheckResult:
        total, distinct = _live_counts(app_db.engine(), spec)
        return dg.AssetCheckResult(
            passed=total > 0 and total == distinct,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={"live_rows": total, "distinct_keys": distinct, "duplicate_keys": total - distinct},
        )

    return _integrity


def build_reconciliation_check(spec: TableSpec) -> dg.AssetChecksDefinition:
    """Source rows = live target rows + records still held in quarantine (within that tolerance)."""

    @dg.asset_check(
        asset=table_asset_key(spec),
        name=RECONCILIATION_CHECK_NAME,
        required_resource_keys={spec.source_system, "app_db"},
        description=f"Row count of {spec.source_table} matches {spec.target_table} plus open quarantine.",
    )
    def _reconcile(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        source_rows = getattr(context.resources, spec.source_system).source().count_rows(spec)
        app_db: AppDatabaseResource = context.resources.app_db
        engine = app_db.engine()
        live_rows, _ = _live_counts(engine, spec)
        with engine.connect() as connection:
            quarantined = connection.execute(
                sa.select(sa.func.count(sa.distinct(sync_error.c.source_key))).where(
                    sync_error.c.entity == spec.entity, sync_error.c.resolved_at.is_(None)
                )
            ).scalar_one()
        difference = source_rows - live_rows
        return dg.AssetCheckResult(
            passed=0 <= difference <= quarantined,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "source_rows": source_rows,
                "live_target_rows": live_rows,
                "open_quarantined_records": int(quarantined),
                "difference": difference,
            },
        )

    return _reconcile


integrity_checks = [build_integrity_check(spec) for spec in CATALOG]
reconciliation_checks = [build_reconciliation_check(spec) for spec in CATALOG]
