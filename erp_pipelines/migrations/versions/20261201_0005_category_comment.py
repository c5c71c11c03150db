"""category table comment: get-or-create, never deleted

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 23:45:00
"""

from __future__ import annotations

from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

OLD = "Product categories, created from the distinct Category values of 4D Products (get-or-create)."
NEW = ("Product categories, created from the distinct Category values of 4D Products (get-or-create: never "
       "deleted by a sync), decoded exactly as erp_product.category is.")


def upgrade() -> None:
    op.create_table_comment('erp_category', NEW, existing_comment=OLD)


def downgrade() -> None:
    op.create_table_comment('erp_category', OLD, existing_comment=NEW)
