"""Every asset and check of the code location materialized on the real components."""

from __future__ import annotations

from collections.abc import Callable

import dagster as dg
import pytest
import sqlalchemy as sa

from erp_pipelines.assets import SYNC_MODE_TAG, source_assets, table_assets
from erp_pipelines.catalog import specs_for
from erp_pipelines.checks import (
    INTEGRITY_CHECK_NAME,
    RECONCILIATION_CHECK_NAME,
    integrity_checks,
    reconciliation_checks,
)
from erp_pipelines.resources import AppDatabaseResource
from erp_pipelines.sources.as400.resource import As400Resource
from erp_pipelines.sources.legacy_4d.resource import Legacy4DResource
from erp_pipelines_tests.support.legacy_4d import PASSWORD, USERNAME
from erp_pipelines_tests.support.tables import AS400_TABLES, LEGACY_TABLES
from erp_sandbox.as400.seed import SeedManifest
from erp_sandbox.legacy_4d.server import EmulatorServer

pytestmark = pytest.mark.integration


def test_materialize_every_asset_with_checks(
    seed: Callable[..., SeedManifest],
    as400: As400Resource,
    legacy4d_seeded: dict,
    legacy4d_server: EmulatorServer,
    app_url: str,
    app_db: sa.Engine,
) -> None:
    manifest = seed(products=120, bad_share=0.02)
    legacy_4d = Legacy4DResource(host="127.0.0.1", port=legacy4d_server.port, username=USERNAME, password=PASSWORD)
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [*source_assets, *table_assets, *integrity_checks, *reconciliation_checks],
            resources={"as400": as400, "legacy_4d": legacy_4d, "app_db": AppDatabaseResource(url=app_url)},
            instance=instance,
            tags={SYNC_MODE_TAG: "full"},
        )
    assert result.success
    materialized = {
        event.asset_key.path[-1]: event.materialization.metadata for event in result.get_asset_materialization_events()
    }
    assert sorted(materialized) == sorted([*AS400_TABLES, *LEGACY_TABLES])
    for spec in specs_for("as400"):
        metadata = materialized[spec.target_table]
        rejected = len(manifest.bad_keys(spec.source_table))
        assert metadata["mode"].value == "full"
        assert metadata["rejected"].value == rejected
        assert metadata["dagster/row_count"].value == manifest.rows[spec.source_table] - rejected
        assert metadata["rows_per_second"].value > 0
        if rejected:
            assert len(metadata["rejected_records"].value.records) == min(rejected, 20)
    checks = {(e.asset_key.path[-1], e.check_name): e.passed for e in result.get_asset_check_evaluations()}
    for table in [*AS400_TABLES, *LEGACY_TABLES]:
        assert checks[(table, INTEGRITY_CHECK_NAME)] is True, table
        assert checks[(table, RECONCILIATION_CHECK_NAME)] is True, table


def test_a_backfill_runs_from_the_run_config_as_the_ui_and_job_launch_pass_it(
    seed: Callable[..., SeedManifest], as400: As400Resource, app_url: str, app_db: sa.Engine,
    as400_source_sql: Callable[[str], None],
) -> None:
    """The asset config `mode`/`since`/`until` (Launchpad, `dagster job launch --config`) over the run tags."""
    seed(products=30, warehouses=1, bad_share=0.0)
    resources = {"as400": as400, "app_db": AppDatabaseResource(url=app_url)}
    pricing = [asset for asset in table_assets if asset.key == dg.AssetKey(["app", "product_pricing"])]
    product = [asset for asset in table_assets if asset.key == dg.AssetKey(["app", "product"])]
    with dg.instance_for_test() as instance:
        assert dg.materialize([*product, *pricing], resources=resources, instance=instance).success
        as400_source_sql('update "PRODUCTLIB"."PRICING" set "UNITPRC" = 99.25, "CHGDAT" = 1261105 where "ITEMNO" = '
                         '(select min("ITEMNO") from "PRODUCTLIB"."PRICING")')
        config = {"mode": "backfill", "since": "2026-11-01", "until": "2026-11-06"}
        result = dg.materialize(pricing, resources=resources, instance=instance, tags={SYNC_MODE_TAG: "incremental"},
                                run_config={"ops": {"app__product_pricing": {"config": config}}})
        refused = dg.materialize(pricing, resources=resources, instance=instance, raise_on_error=False,
                                 run_config={"ops": {"app__product_pricing": {"config": {
                                     "mode": "backfill", "since": "2026-11-06", "until": "2026-11-01"}}}})
    assert result.success
    (event,) = result.get_asset_materialization_events()
    metadata = event.materialization.metadata
    assert (metadata["mode"].value, metadata["backfill_since"].value, metadata["backfill_until"].value) == (
        "backfill", "2026-11-01", "2026-11-06")
    assert metadata["updated"].value >= 1 and metadata["deleted"].value == 0
    assert not refused.success
    (failure,) = [event for event in refused.all_events if event.is_step_failure]
    assert "until 2026-11-01 is not after since 2026-11-06" in failure.step_failure_data.user_failure_data.description
    with app_db.connect() as connection:
        modes = connection.execute(sa.text("select mode from sync_run where entity = 'product_pricing' order by id")
                                   ).scalars().all()
    assert modes == ["full", "backfill"]
