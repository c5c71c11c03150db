"""The run stage on the real application database, driven with Arrow tables directly: the run-level rules
(duplicates across batches, parents, unique values on the converged state, deletions) and the merge."""

from __future__ import annotations

import datetime as dt
import decimal

import numpy as np
import pyarrow as pa
import pytest
import sqlalchemy as sa

from erp_pipelines.catalog import get_spec
from erp_pipelines.engine.loader import MergeOutcome, RunStage

pytestmark = pytest.mark.integration

STOCK = get_spec("product_stock")
PRODUCT = get_spec("product")
STAMP = dt.datetime(2025, 1, 1)


def _stock(items: list[str], on_hand: float = 1.0) -> pa.Table:
    n = len(items)
    quantity = pa.array([decimal.Decimal(str(on_hand))] * n, pa.decimal128(11, 3))
    return pa.table({
        "item_number": pa.array(items), "warehouse": pa.array(["001"] * n), "on_hand": quantity,
        "allocated": quantity, "on_order": quantity, "unit_of_measure": pa.array(["EA"] * n),
        "bin_location": pa.array([None] * n, pa.string()), "is_lot_controlled": pa.array([False] * n),
        "source_changed_at": pa.array([STAMP] * n, pa.timestamp("us")),
    })


def _product_rows(pairs: list[tuple[str, str]]) -> pa.Table:
    n = len(pairs)
    return pa.table({
        "item_number": pa.array([item for item, _ in pairs]), "description": pa.array(["x"] * n),
        "sku": pa.array([sku for _, sku in pairs]), "category": pa.array([None] * n, pa.string()),
        "unit_of_measure": pa.array([None] * n, pa.string()), "is_active": pa.array([True] * n),
        "created_on": pa.array([None] * n, pa.date32()),
        "source_changed_at": pa.array([STAMP] * n, pa.timestamp("us")),
    })


def _products(app_db: sa.Engine, pairs: list[tuple[str, str]]) -> None:
    with app_db.begin() as connection:
        for item, sku in pairs:
            connection.execute(sa.text(
                "insert into product (item_number, description, sku, is_active, source_changed_at) "
                "values (:i, 'x', :s, true, :t)"), {"i": item, "s": sku, "t": STAMP})


def _run(app_db: sa.Engine, spec, batches: list[pa.Table], *, full: bool = False, run_id: int = 1) -> MergeOutcome:
    """Stages the batches as one read and merges them, committing like a run does."""
    with app_db.connect() as connection:
        stage = RunStage(connection, spec, run_id)
        stage.prepare()
        position = 0
        for batch in batches:
            stage.add(batch, position, np.ones(batch.num_rows, dtype=bool))
            position += batch.num_rows
        outcome = stage.merge(full=full)
        connection.commit()
    return outcome


def _live(app_db: sa.Engine, table: str, columns: str) -> list[tuple]:
    with app_db.connect() as connection:
        return [tuple(row) for row in connection.execute(sa.text(
            f"select {columns} from {table} where deleted_at is null order by 1"))]


def test_initial_load_restores_the_foreign_keys_and_rejects_orphans(app_db: sa.Engine) -> None:
    _products(app_db, [("A", "SA"), ("B", "SB")])
    outcome = _run(app_db, STOCK, [_stock(["A", "B"]), _stock(["ORPHAN"])])
    assert (outcome.created, list(outcome.rejected)) == (2, [2])
    assert "parent product (item_number='ORPHAN')" in outcome.rejected[2]["missing_parent:product"]
    assert len(sa.inspect(app_db).get_foreign_keys("product_stock")) == 1


def test_a_key_split_across_batches_rejects_every_copy(app_db: sa.Engine) -> None:
    _products(app_db, [("A", "SA"), ("B", "SB")])
    outcome = _run(app_db, STOCK, [_stock(["A", "B"]), _stock(["B"], on_hand=2.0)])
    assert outcome.created == 1
    assert sorted(outcome.rejected) == [1, 2]
    assert "read 2 times in this read (records 2, 3 of the read)" in outcome.rejected[2]["duplicate_key"]
    assert _live(app_db, "product_stock", "item_number") == [("A",)]


def test_a_duplicate_leaves_the_loaded_row_as_it_was(app_db: sa.Engine) -> None:
    _products(app_db, [("A", "SA")])
    _run(app_db, STOCK, [_stock(["A"], on_hand=1.0)])
    outcome = _run(app_db, STOCK, [_stock(["A"], on_hand=5.0), _stock(["A"], on_hand=6.0)], full=True, run_id=2)
    assert (outcome.updated, outcome.deleted, sorted(outcome.rejected)) == (0, 0, [0, 1])
    assert [str(v) for (v,) in _live(app_db, "product_stock", "on_hand")] == ["1.000"]


def test_swapped_and_rotated_skus_load_in_one_run(app_db: sa.Engine) -> None:
    _products(app_db, [("P1", "A"), ("P2", "B"), ("P3", "C"), ("P4", "D"), ("P5", "E")])
    swap_and_rotation = [("P1", "B"), ("P2", "A")], [("P3", "D"), ("P4", "E"), ("P5", "C")]
    outcome = _run(app_db, PRODUCT, [_product_rows(batch) for batch in swap_and_rotation], run_id=2)
    assert (outcome.updated, outcome.rejected) == (5, {})
    assert _live(app_db, "product", "item_number, sku") == [
        ("P1", "B"), ("P2", "A"), ("P3", "D"), ("P4", "E"), ("P5", "C")]


def test_a_sku_freed_by_a_deletion_in_the_same_full_read_loads(app_db: sa.Engine) -> None:
    _products(app_db, [("OLD", "S1"), ("KEEP", "S2")])
    outcome = _run(app_db, PRODUCT, [_product_rows([("KEEP", "S2"), ("NEW", "S1")])], full=True, run_id=2)
    assert (outcome.created, outcome.unchanged, outcome.deleted, outcome.rejected) == (1, 1, 1, {})
    assert _live(app_db, "product", "item_number, sku") == [("KEEP", "S2"), ("NEW", "S1")]


def test_a_sku_held_by_two_records_or_by_an_untouched_row_is_rejected_naming_the_holders(app_db: sa.Engine) -> None:
    _products(app_db, [("LIVE", "S9")])
    outcome = _run(app_db, PRODUCT, [_product_rows([("X", "S1")]), _product_rows([("Y", "S1"), ("Z", "S9")])],
                   run_id=2)
    assert sorted(outcome.rejected) == [0, 1, 2]
    assert "item_number='X'" in outcome.rejected[0]["duplicate_sku"]
    assert "item_number='Y'" in outcome.rejected[0]["duplicate_sku"]
    assert "item_number='LIVE'" in outcome.rejected[2]["duplicate_sku"]
    assert _live(app_db, "product", "item_number, sku") == [("LIVE", "S9")]


def test_a_rejected_move_keeps_its_old_value_which_blocks_the_swap_partner(app_db: sa.Engine) -> None:
    _products(app_db, [("P1", "A"), ("P2", "B")])
    with app_db.connect() as connection:
        stage = RunStage(connection, PRODUCT, 2)
        stage.prepare()
        stage.add(_product_rows([("P1", "B"), ("P2", "A")]), 0, np.array([True, False]))  # P2's update is bad
        outcome = stage.merge(full=False)
        connection.commit()
    assert sorted(outcome.rejected) == [0]
    assert "item_number='P2'" in outcome.rejected[0]["duplicate_sku"]
    assert _live(app_db, "product", "item_number, sku") == [("P1", "A"), ("P2", "B")]


def test_a_rejected_move_that_keeps_its_old_value_rejects_the_row_taking_that_value_next(app_db: sa.Engine) -> None:
    """Round 1 rejects P1 and N (both take C); P1's live row keeps A, so round 2 rejects P3, which takes A."""
    _products(app_db, [("P1", "A"), ("P2", "B")])
    outcome = _run(app_db, PRODUCT, [_product_rows([("P1", "C"), ("N", "C")]), _product_rows([("P3", "A")])],
                   run_id=2)
    assert sorted(outcome.rejected) == [0, 1, 2]
    assert "(item_number='P1') (live, not changed by this read)" in outcome.rejected[2]["duplicate_sku"]
    assert _live(app_db, "product", "item_number, sku") == [("P1", "A"), ("P2", "B")]


def _indexes(app_db: sa.Engine, table: str) -> dict[str, tuple[int, str]]:
    with app_db.connect() as connection:
        return {name: (oid, definition) for name, oid, definition in connection.execute(sa.text(
            "select i.relname, i.oid, pg_get_indexdef(i.oid) from pg_index x join pg_class i on i.oid = x.indexrelid "
            "where x.indrelid = cast(:table as regclass)"), {"table": table})}


def test_an_initial_load_builds_the_indexes_after_its_rows_and_keeps_a_referenced_key(app_db: sa.Engine) -> None:
    """product_stock's primary key and product's unique SKU index are built anew after the insert (same names
    and definitions); product's primary key, which product_stock's foreign key references, stays in place."""
    stock_before, product_before = _indexes(app_db, "product_stock"), _indexes(app_db, "product")
    _run(app_db, PRODUCT, [_product_rows([("A", "SA"), ("B", "SB")])])
    _run(app_db, STOCK, [_stock(["A", "B"])], run_id=2)
    stock_after, product_after = _indexes(app_db, "product_stock"), _indexes(app_db, "product")
    assert {n: d for n, (_, d) in stock_after.items()} == {n: d for n, (_, d) in stock_before.items()}
    assert {n: d for n, (_, d) in product_after.items()} == {n: d for n, (_, d) in product_before.items()}
    assert stock_after["pk_product_stock"][0] != stock_before["pk_product_stock"][0]
    assert product_after["uq_product_sku_live"][0] != product_before["uq_product_sku_live"][0]
    assert product_after["pk_product"][0] == product_before["pk_product"][0]
    assert _run(app_db, STOCK, [_stock(["A"], on_hand=3.0)], run_id=3).updated == 1
    assert _indexes(app_db, "product_stock") == stock_after
    with pytest.raises(sa.exc.IntegrityError), app_db.begin() as connection:
        connection.execute(sa.text("insert into product_stock select * from product_stock limit 1"))


def test_full_read_withdraws_unchanged_children_of_a_deleted_parent(app_db: sa.Engine) -> None:
    _products(app_db, [("A", "SA"), ("B", "SB")])
    _run(app_db, STOCK, [_stock(["A", "B"])])
    with app_db.begin() as connection:
        connection.execute(sa.text("update product set deleted_at = now() where item_number = 'B'"))
    incremental = _run(app_db, STOCK, [_stock(["A"])], run_id=2)
    assert (incremental.unchanged, incremental.deleted) == (1, 0)
    full = _run(app_db, STOCK, [_stock(["A", "B"])], full=True, run_id=3)
    assert (full.unchanged, full.deleted, full.withdrawn, sorted(full.rejected)) == (1, 1, 1, [1])
    assert _live(app_db, "product_stock", "item_number") == [("A",)]
