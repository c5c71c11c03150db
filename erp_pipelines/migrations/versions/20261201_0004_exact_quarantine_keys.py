"""exact quarantine keys

A quarantined record was named by its key values trimmed and joined with '|', so ' 777' and '777', or
('A|B', 'X') and ('A', 'B|X'), were one record. The key becomes a JSON array of the exact raw values,
rebuilt from each entry's raw record: text without its trailing blanks only (Db2 for i ignores trailing
blanks when it compares CHAR, not leading ones), 4D numbers as numbers.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 22:30:00
"""

from __future__ import annotations

from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

# entity -> (raw key columns, True where trailing blanks are insignificant (AS400 CHAR))
KEYS = {
    "product": (("ITEMNO",), True),
    "product_measurement": (("ITEMNO", "MEASTYP"), True),
    "product_pricing": (("ITEMNO", "PRCLST", "EFFDAT"), True),
    "product_stock": (("ITEMNO", "WHSE"), True),
    "erp_category": (("Category",), False),
    "erp_product": (("ProductID",), False),
    "erp_customer": (("CustomerID",), False),
    "erp_order": (("OrderID",), False),
    "erp_invoice": (("InvoiceID",), False),
    "erp_inventory": (("InventoryID",), False),
    "erp_bill_of_material": (("BomID",), False),
}


def _part(column: str, rtrim: bool) -> str:
    value = f"raw_record -> '{column}'"
    if rtrim:
        return f"case when jsonb_typeof({value}) = 'string' then to_jsonb(rtrim(raw_record ->> '{column}', ' ')) " \
               f"else coalesce({value}, 'null'::jsonb) end"
    return f"case when jsonb_typeof({value}) = 'string' and (raw_record ->> '{column}') ~ '^-?[0-9]{{1,18}}$' " \
           f"then to_jsonb((raw_record ->> '{column}')::bigint) else coalesce({value}, 'null'::jsonb) end"


def upgrade() -> None:
    cases = " ".join(
        f"when '{entity}' then jsonb_build_array({', '.join(_part(c, rtrim) for c in columns)})"
        for entity, (columns, rtrim) in KEYS.items()
    )
    op.drop_index('ix_sync_error_open', table_name='sync_error')
    op.execute(
        "alter table sync_error alter column source_key type jsonb using "
        f"(case entity {cases} else jsonb_build_array(source_key) end)"
    )
    op.execute("comment on column sync_error.source_key is "
               "'the record''s exact key: a JSON array of its raw key values'")
    op.execute("create index ix_sync_error_open on sync_error (entity, source_key) where resolved_at is null")


def downgrade() -> None:
    op.drop_index('ix_sync_error_open', table_name='sync_error')
    joined = " || ".join(["coalesce(source_key ->> 0, '')"] + [
        f"coalesce('|' || (source_key ->> {part}), '')" for part in range(1, 6)])
    op.execute(f"alter table sync_error alter column source_key type text using ({joined})")
    op.execute("comment on column sync_error.source_key is null")
    op.execute("create index ix_sync_error_open on sync_error (entity, source_key) where resolved_at is null")
