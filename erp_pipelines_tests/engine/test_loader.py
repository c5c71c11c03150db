"""The loader's two paths on the real application database, driven with Arrow batches directly."""

from __future__ import annotations

import datetime as dt
import decimal

import numpy as np
import pyarrow as pa
import pytest
import sqlalchemy as sa

from erp_pipelines.catalog import get_spec
from erp_pipelines.engine.loader import TargetWriter

pytestmark = pytest.mark.integration

STOCK = get_spec("product_stock")


def _stock(items: list[str], on_hand: float = 1.0) -> pa.Table:
    n = len(items)
    quantity = pa.array([decimal.Decimal(str(on_hand))] * n, pa.decimal128(11, 3))
    return pa.table({
        "item_number": pa.array(items), "warehouse": pa.array(["001"] * n), "on_hand": quantity,
        "allocated": quantity, "on_order": quantity, "unit_of_measure": pa.array(["EA"] * n),
        "bin_location": pa.array([None] * n, pa.string()), "is_lot_controlled": pa.array([False] * n),
        "source_changed_at": pa.array([dt.datetime(2025, 1, 1)] * n, pa.timestamp("us")),
    })


def _products(app_db: sa.Engine, *items: str) -> None:
    with app_db.begin() as connection:
        for item in items:
            connection.execute(sa.text(
                "insert into product (item_number, description, sku, is_active, source_changed_at) "
                "values (:i, 'x', :s, true, now())"), {"i": item, "s": f"SKU-{item}"})


def _foreign_keys(app_db: sa.Engine) -> list[dict]:
    return sa.inspect(app_db).get_foreign_keys("product_stock")


def test_initial_load_is_one_transaction_that_restores_the_foreign_keys(app_db: sa.Engine) -> None:
    _products(app_db, "A", "B")
    with app_db.connect() as connection:
        writer = TargetWriter(connection, STOCK, sync_run_id=1)
        writer.prepare(track_seen_keys=True)
        assert writer.bulk and writer.single_transaction
        outcome = writer.write(_stock(["A", "B", "ORPHAN"]), np.array([0, 1, 2]))
        assert outcome.created == 2
        assert list(outcome.rejected) == [2]
        assert "parent product (item_number='ORPHAN')" in outcome.rejected[2]["missing_parent:product"]
        with app_db.connect() as other:  # another session waits: it never sees the table without its keys
            other.execute(sa.text("set lock_timeout = '200ms'"))
            with pytest.raises(sa.exc.OperationalError, match="lock timeout"):
                other.execute(sa.text("select count(*) from product_stock"))
        writer.finish()
        connection.commit()
    assert len(_foreign_keys(app_db)) == 1
    with app_db.connect() as connection:
        assert connection.execute(sa.text("select count(*) from product_stock")).scalar_one() == 2


def test_bulk_path_falls_back_to_merging_when_a_key_repeats(app_db: sa.Engine) -> None:
    _products(app_db, "A", "B", "C")
    with app_db.connect() as connection:
        writer = TargetWriter(connection, STOCK, sync_run_id=1)
        writer.prepare(track_seen_keys=False)
        first = writer.write(_stock(["A", "B"]), np.array([0, 1]))
        second = writer.write(_stock(["B", "C"], on_hand=2.0), np.array([0, 1]))
        writer.finish()
        connection.commit()
    assert (first.created, second.created, second.updated) == (2, 1, 1)
    assert not writer.bulk
    with app_db.connect() as connection:
        on_hand = connection.execute(sa.text("select on_hand from product_stock where item_number = 'B'")).scalar_one()
    assert str(on_hand) == "2.000"
    assert len(_foreign_keys(app_db)) == 1


def test_merge_path_drops_unchanged_rows_before_anything_else(app_db: sa.Engine) -> None:
    _products(app_db, "A", "B")
    with app_db.connect() as connection:
        writer = TargetWriter(connection, STOCK, sync_run_id=1)
        writer.prepare(track_seen_keys=False)
        writer.write(_stock(["A", "B"]), np.array([0, 1]))
        writer.finish()
        connection.commit()
        again = TargetWriter(connection, STOCK, sync_run_id=2)
        again.prepare(track_seen_keys=True)
        assert not again.bulk
        outcome = again.write(_stock(["A", "B", "ORPHAN"]), np.array([0, 1, 2]))
        connection.commit()
    assert (outcome.unchanged, outcome.created, outcome.updated, list(outcome.rejected)) == (2, 0, 0, [2])
