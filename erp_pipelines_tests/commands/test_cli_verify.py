"""`erp-sync verify` end to end against the AS400 stand-in and the 4D emulator: it finds exactly the keys and
columns that were changed behind the sync's back, and writes to neither side."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import psycopg2
import pytest
import sqlalchemy as sa

from erp_pipelines_tests.commands.test_cli import erp_sync
from erp_pipelines_tests.support.django_app import DjangoApp
from erp_pipelines_tests.support.sandbox import operator_env
from erp_sandbox.as400.seed import SeedManifest
from erp_sandbox.legacy_4d.server import EmulatorServer
from erp_sandbox.legacy_4d.store import LegacyStore

pytestmark = pytest.mark.integration

AUDIT = "select (select count(*) from sync_run), (select count(*) from sync_error), " \
        "(select count(*) from sync_watermark)"


@pytest.fixture
def cli_env(tmp_path: Path, app_url: str, legacy4d_server: EmulatorServer) -> dict[str, str]:
    return operator_env(tmp_path, app_url, legacy4d_server.port)


def _one(app_db: sa.Engine, statement: str) -> tuple:
    with app_db.connect() as connection:
        return tuple(connection.exec_driver_sql(statement).one())


def _column(app_db: sa.Engine, statement: str) -> list:
    """One column of a query, on a connection closed at once (an open one would block the next test's TRUNCATE)."""
    with app_db.connect() as connection:
        return list(connection.exec_driver_sql(statement).scalars())


def _source_state(owner_url: str) -> tuple:
    with psycopg2.connect(owner_url) as connection, connection.cursor() as cursor:
        cursor.execute("""select count(*), md5(string_agg(p::text, '|' order by p::text))
                          from "PRODUCTLIB"."PRODUCTS" p""")
        return cursor.fetchone()


def _written(path: Path) -> list[dict]:
    if path.suffix == ".json":
        return json.loads(path.read_text())
    with path.open() as handle:
        return [{"kind": row["kind"], "key": json.loads(row["key"]), "columns": row["columns"].split(),
                 "source": json.loads(row["source"]), "target": json.loads(row["target"])}
                for row in csv.DictReader(handle)]


def test_verify_as400_names_exactly_the_changed_keys_and_columns_and_writes_nothing(
    seed: Callable[..., SeedManifest], cli_env: dict[str, str], app_db: sa.Engine,
    as400_source_sql: Callable[[str], None], as400_owner_url: str, tmp_path: Path,
) -> None:
    manifest = seed(products=60, bad_share=0.05)
    synced = erp_sync(cli_env, "sync", "--entity", "product")
    assert synced.returncode == 0, synced.stdout + synced.stderr
    quarantined = _one(app_db, "select count(distinct source_key) from sync_error "
                               "where entity = 'product' and resolved_at is null")[0]
    assert quarantined > 0

    clean = erp_sync(cli_env, "verify", "--entity", "product")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    rows = manifest.rows["PRODUCTLIB.PRODUCTS"]
    assert f"product: {rows} source records, {rows - quarantined} live target rows, {quarantined} still " \
           "quarantined; missing in target=0, not in source=0, differs=0, duplicate in source=0" in clean.stdout
    assert f"{rows} = {rows - quarantined} + {quarantined} (holds)" in clean.stdout
    assert "verified: source and target agree" in clean.stdout

    bad = set(manifest.bad_keys("PRODUCTLIB.PRODUCTS"))
    good = [k for k in _column(app_db, "select item_number from product where deleted_at is null order by item_number")
            if (k,) not in bad]
    altered, removed, gone = good[0], good[1], good[2]
    with app_db.begin() as connection:
        connection.exec_driver_sql(f"update product set description = 'TAMPERED' where item_number = '{altered}'")
        connection.exec_driver_sql(f"delete from product where item_number = '{removed}'")
    as400_source_sql(f"""create temporary table copied as select * from "PRODUCTLIB"."PRODUCTS"
                         where "ITEMNO" = '{good[3]}';
                         update copied set "ITEMNO" = 'ITMNEW000001', "SKU" = 'SKU-NEW-000001';
                         insert into "PRODUCTLIB"."PRODUCTS" select * from copied;
                         delete from "PRODUCTLIB"."PRODUCTS" where "ITEMNO" = '{gone}'""")
    before_target = _one(app_db, "select count(*), md5(string_agg(p::text, '|' order by p::text)) from product p")
    before_audit = _one(app_db, AUDIT)
    before_source = _source_state(as400_owner_url)

    outputs = {suffix: tmp_path / f"differences{suffix}" for suffix in (".json", ".csv")}
    results = [erp_sync(cli_env, "verify", "--entity", "product", "--sample", "2", "--output", str(path))
               for path in outputs.values()]
    for result in results:
        assert result.returncode == 1, result.stdout + result.stderr
        assert "missing in target=2, not in source=1, differs=1" in result.stdout
        assert "DIFFERENT: 4 difference(s)" in result.stdout
        assert "… and 2 more (all in" in result.stdout
    assert f"differs (item_number='{altered}'): description: source" in results[0].stdout

    for path in outputs.values():
        written = _written(path)
        differences = sorted((d["kind"], d["key"]["item_number"], tuple(d["columns"]) if d["kind"] == "differs"
                              else ()) for d in written if d["kind"] != "quarantined")
        assert differences == sorted([("differs", altered, ("description",)), ("missing_in_target", removed, ()),
                                      ("missing_in_target", "ITMNEW000001", ()), ("not_in_source", gone, ())]), path
        tampered = next(d for d in written if d["kind"] == "differs")
        assert tampered["target"] == {"description": "TAMPERED"} and tampered["source"]["description"] != "TAMPERED"
        assert sum(d["kind"] == "quarantined" for d in written) == quarantined

    assert _one(app_db, "select count(*), md5(string_agg(p::text, '|' order by p::text)) from product p") \
        == before_target
    assert _one(app_db, AUDIT) == before_audit
    assert _source_state(as400_owner_url) == before_source


def test_verify_4d_into_the_application_reads_references_back_and_writes_nothing(
    legacy4d_seeded: dict, legacy4d_server: EmulatorServer, legacy4d_store: LegacyStore, django_app: DjangoApp,
    app_db: sa.Engine, cli_env: dict[str, str], tmp_path: Path,
) -> None:
    env = {**cli_env, "ERP_TARGET": "application"}
    synced = erp_sync(env, "sync", "--entity", "erp_category", "--entity", "erp_product")
    assert synced.returncode == 0, synced.stdout + synced.stderr
    clean = erp_sync(env, "verify", "--entity", "Products")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "differs=0" in clean.stdout and "(holds)" in clean.stdout

    ids = _column(app_db, "select legacy_id from products_product where legacy_id is not null and deleted_at is null "
                          "order by legacy_id limit 4")
    renamed, recategorised, hidden, deleted = ids
    other = _one(app_db, f"select c.id from products_category c where c.id <> (select category_id from "
                         f"products_product where legacy_id = {recategorised}) order by c.id limit 1")[0]
    django_app.execute(f"update products_product set category_id = {other} where legacy_id = {recategorised}")
    django_app.execute(f"update products_product set deleted_at = now() where legacy_id = {hidden}")
    legacy4d_store.update("Products", renamed, {"ProductName": "Renamed in 4D"})
    legacy4d_store.delete("Products", [deleted])
    stamp = legacy4d_store.global_stamp()
    before = _one(app_db, "select count(*), md5(string_agg(p::text, '|' order by p::text)) from products_product p")
    audit = _one(app_db, AUDIT)

    output = tmp_path / "products.json"
    result = erp_sync(env, "verify", "--entity", "erp_product", "--output", str(output))
    assert result.returncode == 1, result.stdout + result.stderr
    found = sorted((d["kind"], int(d["key"]["legacy_id"]), tuple(d["columns"]) if d["kind"] == "differs" else ())
                   for d in _written(output) if d["kind"] != "quarantined")
    assert found == sorted([("differs", renamed, ("name",)), ("differs", recategorised, ("category",)),
                            ("missing_in_target", hidden, ()), ("not_in_source", deleted, ())])
    assert f"differs (legacy_id={renamed}): name: source 'Renamed in 4D'" in result.stdout
    assert _one(app_db, "select count(*), md5(string_agg(p::text, '|' order by p::text)) from products_product p") \
        == before
    assert _one(app_db, AUDIT) == audit
    assert legacy4d_store.global_stamp() == stamp


@pytest.mark.parametrize(("args", "message"), [
    (["verify", "--entity", "nope"], "unknown entity 'nope'"),
    (["verify", "--entity", "product", "--output", "differences.txt"], "--output differences.txt: name a .csv or"),
])
def test_verify_bad_usage_exits_2_naming_the_option(cli_env: dict[str, str], args: list[str], message: str) -> None:
    result = erp_sync(cli_env, *args)
    assert result.returncode == 2 and message in result.stderr


def test_verify_as400_into_the_application_compares_renamed_columns_and_key_references(
    seed: Callable[..., SeedManifest], django_app: DjangoApp, app_db: sa.Engine, cli_env: dict[str, str],
    legacy4d_seeded: dict, tmp_path: Path,
) -> None:
    seed(products=40, bad_share=0)
    env = {**cli_env, "ERP_TARGET": "application"}
    synced = erp_sync(env, "sync", "--entity", "product", "--entity", "product_measurement", "--entity", "erp_category")
    assert synced.returncode == 0, synced.stdout + synced.stderr
    for entity in ("product", "product_measurement", "erp_category"):
        clean = erp_sync(env, "verify", "--entity", entity)
        assert clean.returncode == 0, clean.stdout + clean.stderr
        assert "differs=0" in clean.stdout and "verified: source and target agree" in clean.stdout
    item = _one(app_db, "select min(item_number) from products_product where item_number is not null")[0]
    django_app.execute(f"update products_product set name = 'TAMPERED' where item_number = '{item}'")
    output = tmp_path / "product.csv"
    tampered = erp_sync(env, "verify", "--entity", "product", "--output", str(output))
    assert tampered.returncode == 1, tampered.stdout + tampered.stderr
    assert [(d["kind"], d["key"], d["columns"], d["target"]) for d in _written(output)] == [
        ("differs", {"item_number": item}, ["description"], {"description": "TAMPERED"})]
    assert erp_sync(env, "verify", "--entity", "product_measurement").returncode == 0
    measured, other = _one(app_db, "select m.item_number, (select min(p.id) from products_product p where "
                                   "p.id <> m.product_id) from products_productmeasurement m "
                                   "order by m.item_number, m.measure_type limit 1")
    django_app.execute(f"update products_productmeasurement set product_id = {other} "
                       f"where item_number = '{measured}'")
    output = tmp_path / "measurement.json"
    repointed = erp_sync(env, "verify", "--entity", "product_measurement", "--output", str(output))
    assert repointed.returncode == 1, repointed.stdout + repointed.stderr
    written = _written(output)
    assert written and {(d["kind"], d["key"]["item_number"], tuple(d["columns"])) for d in written} == {
        ("differs", measured, ("product_id",))}
