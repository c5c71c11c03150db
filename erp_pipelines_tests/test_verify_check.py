"""The row-by-row verification as a Dagster asset check, on the AS400 stand-in: passes after a sync, fails
naming what differs once a target value is changed behind the sync's back."""

from __future__ import annotations

from collections.abc import Callable

import dagster as dg
import pytest
import sqlalchemy as sa

from erp_pipelines.assets import table_asset_key, table_assets
from erp_pipelines.catalog import get_spec
from erp_pipelines.checks import verify_checks
from erp_pipelines.engine.sync import run_sync
from erp_pipelines.resources import AppDatabaseResource
from erp_pipelines.sources.as400.resource import As400Resource
from erp_sandbox.as400.seed import SeedManifest

pytestmark = pytest.mark.integration


def _evaluate(as400: As400Resource, app_url: str) -> dg.AssetCheckEvaluation:
    spec = get_spec("product")
    check = next(c for c in verify_checks if next(iter(c.check_keys)).asset_key == table_asset_key(spec))
    asset = next(a for a in table_assets if table_asset_key(spec) in a.keys)
    with dg.instance_for_test() as instance:
        result = dg.materialize([asset, check], selection=dg.AssetSelection.checks(check), instance=instance,
                                resources={"as400": as400, "app_db": AppDatabaseResource(url=app_url)})
    assert result.success and not result.get_asset_materialization_events()  # the check alone ran
    (evaluation,) = result.get_asset_check_evaluations()
    return evaluation


def test_verify_check_passes_after_a_sync_and_names_a_changed_value(
    seed: Callable[..., SeedManifest], as400: As400Resource, app_url: str, app_db: sa.Engine
) -> None:
    manifest = seed(products=60, bad_share=0.1)
    run_sync(get_spec("product"), as400.source(), app_db, mode="full", max_rejected_share=1.0)
    passed = _evaluate(as400, app_url)
    assert passed.passed, passed.description
    assert passed.metadata["source_records"].value == manifest.rows["PRODUCTLIB.PRODUCTS"]
    assert passed.metadata["still_quarantined"].value == len(manifest.bad_keys("PRODUCTLIB.PRODUCTS"))
    with app_db.begin() as connection:
        item = connection.exec_driver_sql("update product set description = 'TAMPERED' where item_number = "
                                          "(select min(item_number) from product) returning item_number").scalar_one()
    failed = _evaluate(as400, app_url)
    assert not failed.passed and failed.severity == dg.AssetCheckSeverity.ERROR
    assert failed.description.startswith("1 differs (see `erp-sync verify --entity product")
    assert failed.metadata["differences_sample"].value == [{"kind": "differs", "key": [item],
                                                            "columns": ["description"]}]
