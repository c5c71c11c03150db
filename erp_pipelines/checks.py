"""Asset checks of the application tables: blocking integrity, source reconciliation, and the row-by-row
verification, which runs on its own schedule (`schedules.verify_schedule`), never with a sync."""


import dagster as dg

from erp_pipelines.assets import table_asset_key
from erp_pipelines.catalog import CATALOG, system_of
from erp_pipelines.core.spec import TableSpec
from erp_pipelines.engine.audit import Audit
from erp_pipelines.engine.reconcile import live_counts, reconcile
from erp_pipelines.engine.verify import verify_table
from erp_pipelines.resources import AppDatabaseResource
from erp_pipelines.sources.system import resource_of

INTEGRITY_CHECK_NAME = "live_rows_present_and_unique"
RECONCILIATION_CHECK_NAME = "reconciles_with_source"
POSITION_CHECK_NAME = "source_position_retained"
VERIFY_CHECK_NAME = "matches_source_row_by_row"
VERIFY_SAMPLE_SIZE = 20


def build_integrity_check(spec: TableSpec) -> dg.AssetChecksDefinition:
    """Blocking: the table must have live rows and no business key twice; downstream waits otherwise."""

    @dg.asset_check(
        asset=table_asset_key(spec),
        name=INTEGRITY_CHECK_NAME,
        blocking=True,
        description=f"{spec.target_table} has live rows and {', '.join(spec.business_key)} is unique.",
    )
    def _integrity(app_db: AppDatabaseResource) -> dg.AssetCheckResult:
        total, distinct = live_counts(spec, app_db.engine())
        return dg.AssetCheckResult(
            passed=total > 0 and total == distinct,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={"live_rows": total, "distinct_keys": distinct, "duplicate_keys": total - distinct},
        )

    return _integrity


def build_reconciliation_check(spec: TableSpec) -> dg.AssetChecksDefinition:
    """By keys: every source record live in the target or open in the quarantine, and every live target
    key still at the source (counts alone let lost rows and live orphans cancel out)."""

    @dg.asset_check(
        asset=table_asset_key(spec),
        name=RECONCILIATION_CHECK_NAME,
        required_resource_keys={spec.source_system, "app_db"},
        description=f"Every record of {spec.source_table} is live in {spec.target_table} or open in the "
                    "quarantine, and every live row's key is still at the source.",
    )
    def _reconcile(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        source = resource_of(context.resources, system_of(spec)).source()
        app_db: AppDatabaseResource = context.resources.app_db
        result = reconcile(spec, source, app_db.engine())
        return dg.AssetCheckResult(
            passed=result.passed,
            severity=dg.AssetCheckSeverity.ERROR,
            description=None if result.passed else (
                f"{result.unaccounted} source record(s) neither live nor quarantined; "
                f"{result.live_not_in_source} live row(s) whose key the source no longer has"),
            metadata={
                "source_records": result.source_records,
                "unaccounted_source_records": result.unaccounted,
                "live_rows_not_in_source": result.live_not_in_source,
                "unaccounted_sample": dg.MetadataValue.json(result.unaccounted_sample),
                "live_not_in_source_sample": dg.MetadataValue.json(result.live_not_in_source_sample),
            },
        )

    return _reconcile


def build_position_check(spec: TableSpec) -> dg.AssetChecksDefinition:
    """Warns while there is still time to act: the source may soon lose the position the next incremental run
    continues from (an IBM i journal receiver about to be deleted), which would force a full sync."""

    @dg.asset_check(
        asset=table_asset_key(spec),
        name=POSITION_CHECK_NAME,
        required_resource_keys={spec.source_system, "app_db"},
        description=f"The source still holds, with a margin, the position {spec.entity}'s next incremental run "
                    "continues from.",
    )
    def _position(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        app_db: AppDatabaseResource = context.resources.app_db
        with app_db.engine().connect() as connection:
            since = Audit(connection, spec).load_watermark()
        warning = resource_of(context.resources, system_of(spec)).source().position_warning(spec, since)
        return dg.AssetCheckResult(passed=warning is None, severity=dg.AssetCheckSeverity.WARN, description=warning,
                                   metadata={"watermark": dg.MetadataValue.json(since or {})})

    return _position


def build_verify_check(spec: TableSpec) -> dg.AssetChecksDefinition:
    """Every mapped value compared with the source's decoded value (`engine.verify`): a full read of both
    sides, so it is scheduled on its own, off the sync jobs; reads only. Quarantined records are counted,
    not failed (the sync reports them already)."""

    @dg.asset_check(
        asset=table_asset_key(spec),
        name=VERIFY_CHECK_NAME,
        required_resource_keys={spec.source_system, "app_db"},
        pool=spec.source_system,
        description=f"Every live row of {spec.target_table} holds exactly what a sync of {spec.source_table} would "
                    "write, no source record is missing and no live row is gone at the source (row-by-row "
                    "comparison of decoded values).",
    )
    def _verify(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        source = resource_of(context.resources, system_of(spec)).source()
        app_db: AppDatabaseResource = context.resources.app_db
        comparison = verify_table(spec, source, app_db.engine())
        counts = comparison.counts()
        sample = [{"kind": d.kind, "key": [str(part) for part in d.key], "columns": list(d.columns)}
                  for d in comparison.differences[:VERIFY_SAMPLE_SIZE]]
        return dg.AssetCheckResult(
            passed=comparison.passed,
            severity=dg.AssetCheckSeverity.ERROR,
            description=None if comparison.passed else ", ".join(
                f"{count} {kind.replace('_', ' ')}" for kind, count in counts.items() if count)
            + f" (see `erp-sync verify --entity {spec.entity} --output FILE.csv`)",
            metadata={
                "source_records": comparison.source_records,
                "live_target_rows": comparison.target_live_rows,
                "still_quarantined": comparison.quarantined_in_source,
                **counts,
                "key_ranges_differing": comparison.ranges_differing,
                "differences_sample": dg.MetadataValue.json(sample),
            },
        )

    return _verify


integrity_checks = [build_integrity_check(spec) for spec in CATALOG]
position_checks = [build_position_check(spec) for spec in CATALOG]
reconciliation_checks = [build_reconciliation_check(spec) for spec in CATALOG]
verify_checks = [build_verify_check(spec) for spec in CATALOG]
VERIFY_CHECK_KEYS = [dg.AssetCheckKey(table_asset_key(spec), VERIFY_CHECK_NAME) for spec in CATALOG]
