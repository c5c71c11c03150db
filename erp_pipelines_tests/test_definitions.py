"""The code location: it loads, has the expected shape, and materializes on the real components."""

from __future__ import annotations

import os
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
from erp_pipelines.definitions import defs
from erp_pipelines.resources import AppDatabaseResource, As400Resource, Legacy4DResource
from erp_pipelines_tests.fixtures_legacy_4d import PASSWORD, USERNAME
from erp_sandbox.as400.seed import SeedManifest
from erp_sandbox.legacy_4d.server import EmulatorServer

AS400_TABLES = ["product", "product_measurement", "product_pricing", "product_stock"]
LEGACY_TABLES = ["erp_category", "erp_product", "erp_customer", "erp_order", "erp_invoice", "erp_inventory",
                 "erp_bill_of_material"]


def test_definitions_load() -> None:
    dg.Definitions.validate_loadable(defs)
    for job in ("as400_daily_job", "as400_inventory_job", "legacy_4d_daily_job"):
        assert defs.resolve_job_def(job)
    assert defs.resolve_job_def("full_resync_job")


def test_as400_assets_lineage_groups_and_policies() -> None:
    graph = defs.resolve_asset_graph()
    for table in AS400_TABLES:
        key = dg.AssetKey(["app", table])
        node = graph.get(key)
        assert node.group_name == "as400"
        assert node.pools == {"as400"}
        assert node.owners == ["team:erp-integration"]
        assert "postgres" in node.kinds
        assert node.description
        assert next(iter(node.metadata["dagster/column_schema"].columns)).name == "item_number"
    product = dg.AssetKey(["app", "product"])
    assert graph.get(product).parent_keys == {dg.AssetKey(["as400", "PRODUCTLIB", "PRODUCTS"])}
    for child in ("product_measurement", "product_pricing", "product_stock"):
        assert product in graph.get(dg.AssetKey(["app", child])).parent_keys
    stock = graph.get(dg.AssetKey(["app", "product_stock"]))
    assert dg.AssetKey(["as400", "INVENTORYLIB", "INVENTORY"]) in stock.parent_keys


def test_retry_policy_is_exponential_with_jitter() -> None:
    for asset in table_assets:
        policy = asset.op.retry_policy
        assert policy.backoff == dg.Backoff.EXPONENTIAL and policy.jitter == dg.Jitter.PLUS_MINUS
        assert policy.max_retries >= 2


def test_password_is_an_env_var_in_the_definitions() -> None:
    resource = defs.resources["as400"]
    assert isinstance(resource, As400Resource)
    assert os.environ["AS400_PASSWORD"] not in repr(defs.resources)


def test_4d_assets_lineage_and_pool() -> None:
    graph = defs.resolve_asset_graph()
    for table in LEGACY_TABLES:
        node = graph.get(dg.AssetKey(["app", table]))
        assert node.group_name == "legacy_4d"
        assert node.pools == {"legacy_4d"}
    parents = {
        "erp_product": {("legacy_4d", "Products"), ("app", "erp_category")},
        "erp_order": {("legacy_4d", "Orders"), ("app", "erp_customer")},
        "erp_invoice": {("legacy_4d", "Invoices"), ("app", "erp_order")},
        "erp_inventory": {("legacy_4d", "Inventory"), ("app", "erp_product")},
        "erp_bill_of_material": {("legacy_4d", "BillOfMaterials"), ("app", "erp_product")},
    }
    for table, expected in parents.items():
        assert {tuple(key.path) for key in graph.get(dg.AssetKey(["app", table])).parent_keys} == expected


@pytest.mark.integration
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
