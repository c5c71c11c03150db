"""The migrations and the catalog-derived tables never drift apart, and the schema holds its rules."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from erp_pipelines.catalog import application_metadata
from erp_pipelines.migrations import alembic_config, project_tables_only

pytestmark = pytest.mark.integration


def test_migrated_schema_matches_the_catalog(app_db: sa.Engine) -> None:
    metadata = application_metadata()
    with app_db.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"include_name": project_tables_only(set(metadata.tables)), "compare_type": True})
        differences = compare_metadata(context, metadata)
    assert differences == []


def test_children_reference_the_product(app_db: sa.Engine) -> None:
    inspector = sa.inspect(app_db)
    for table in ("product_measurement", "product_pricing", "product_stock"):
        (foreign_key,) = inspector.get_foreign_keys(table)
        assert foreign_key["referred_table"] == "product"
        assert foreign_key["constrained_columns"] == ["item_number"]
    assert set(application_metadata().tables) >= {"product", "product_measurement", "product_pricing", "product_stock"}


def test_live_sku_is_unique(app_db: sa.Engine) -> None:
    insert = sa.text(
        "insert into product (item_number, description, sku, is_active, source_changed_at, deleted_at) "
        "values (:item, 'X', 'SKU-1', true, now(), :deleted)"
    )
    with app_db.begin() as connection:
        connection.execute(insert, {"item": "A", "deleted": None})
        connection.execute(insert, {"item": "B", "deleted": "2025-01-01"})  # a deleted row may share it
    with pytest.raises(sa.exc.IntegrityError), app_db.begin() as connection:
        connection.execute(insert, {"item": "C", "deleted": None})


def test_old_quarantine_keys_become_exact_keys_from_the_raw_record(app_url: str, app_db: sa.Engine) -> None:
    config = alembic_config(app_url)
    command.downgrade(config, "0003")
    try:
        with app_db.begin() as connection:
            run = connection.execute(sa.text(
                "insert into sync_run (source_system, entity, source_table, target_table, mode, status) "
                "values ('as400', 'product', 'P', 'product', 'full', 'COMPLETED') returning id")).scalar_one()
            for entity, key, raw in (
                ("product", "777", '{"ITEMNO": " 777           "}'),  # trimmed and joined: lossy
                ("product_pricing", "A|B|X|1250101", '{"ITEMNO": "A|B", "PRCLST": "X   ", "EFFDAT": "1250101"}'),
                ("erp_product", "42", '{"ProductID": 42}'),
                ("erp_order", "7", '{"OrderID": "7"}'),
            ):
                connection.execute(sa.text(
                    "insert into sync_error (sync_run_id, source_system, entity, source_key, rules, error_message, "
                    "raw_record) values (:run, 'x', :entity, :key, '[]', 'm', cast(:raw as jsonb))"),
                    {"run": run, "entity": entity, "key": key, "raw": raw})
    finally:
        command.upgrade(config, "head")
    with app_db.connect() as connection:
        keys = dict(connection.execute(sa.text("select entity, source_key from sync_error")).all())
    assert keys == {"product": [" 777"], "product_pricing": ["A|B", "X", "1250101"], "erp_product": [42],
                    "erp_order": [7]}
