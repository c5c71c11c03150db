"""The code location: it loads and has the expected shape (materializing it is in test_materialize.py)."""

from __future__ import annotations

import os
import subprocess
import sys

import dagster as dg

from erp_pipelines.assets import table_assets
from erp_pipelines.definitions import defs
from erp_pipelines.sources.as400.resource import As400Resource
from erp_pipelines_tests.support.tables import AS400_TABLES, LEGACY_TABLES


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
    """The definitions hold the variable's name, never its value, even when the value is set at load."""
    resource = defs.resources["as400"]
    assert isinstance(resource, As400Resource)
    assert resource.password == dg.EnvVar("AS400_PASSWORD")
    secret = "pw-4-definitions-Zq9"
    script = "from erp_pipelines.definitions import defs; print(repr(defs.resources))"
    shown = subprocess.run([sys.executable, "-c", script], env={**os.environ, "AS400_PASSWORD": secret},
                           capture_output=True, text=True, check=True).stdout
    assert "As400Resource(" in shown
    assert secret not in shown


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


def test_definitions_load_with_the_application_target() -> None:
    """With ERP_TARGET=application (the sandbox's .env) every job and sensor selects the assets' own keys
    (`application/<source>/<table>`): a job built from the project-owned specs named keys no asset has."""
    script = """
import dagster as dg
from erp_pipelines.definitions import defs
dg.Definitions.validate_loadable(defs)
graph = defs.resolve_asset_graph()
for job in defs.resolve_all_job_defs():
    selected = job.asset_layer.selected_asset_keys if job.asset_layer else set()
    print(job.name, sorted(key.to_user_string() for key in selected))
for sensor in defs.sensors:
    if sensor.asset_selection is not None:
        print(sensor.name, sorted(key.to_user_string() for key in sensor.asset_selection.resolve(graph)))
"""
    shown = subprocess.run([sys.executable, "-c", script], env={**os.environ, "ERP_TARGET": "application"},
                           capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr[-2000:]
    lines = dict(line.split(" ", 1) for line in shown.stdout.splitlines())
    assert "application/as400/products_product" in lines["as400_daily_job"]
    assert "application/legacy_4d/products_product" in lines["legacy_4d_daily_job"]
    assert "application/as400/products_productstock" in lines["as400_change_sensor"]
    assert "app/product'" not in shown.stdout
