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
