"""The project's tables and views move from public into the project's own schema erp_sync

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 14:20:00
"""

from __future__ import annotations

from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

TABLES = ('sync_run', 'sync_error', 'sync_watermark', 'sync_alert', 'source_change', 'product',
          'product_measurement', 'product_pricing', 'product_stock', 'erp_category', 'erp_product',
          'erp_customer', 'erp_order', 'erp_invoice', 'erp_inventory', 'erp_bill_of_material')
VIEWS = ('sync_history', 'sync_event')


def _move(kind: str, name: str, source: str, target: str) -> None:
    """Moves one relation if it is in `source` (a database created after this change has it in place)."""
    op.execute(f"do $$ begin if to_regclass('{source}.{name}') is not null then "
               f"alter {kind} {source}.{name} set schema {target}; end if; end $$")


def upgrade() -> None:
    for name in TABLES:
        _move('table', name, 'public', 'erp_sync')
    for name in VIEWS:
        _move('view', name, 'public', 'erp_sync')


def downgrade() -> None:
    for name in VIEWS:
        _move('view', name, 'erp_sync', 'public')
    for name in TABLES:
        _move('table', name, 'erp_sync', 'public')
