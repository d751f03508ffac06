"""item product ids

A product feed names each product by the shop's id (SKU, handle, Merchant Center id); that id is
the item's identity, so re-importing an updated feed updates the item instead of adding a second
one. `image_url` keeps where a downloaded picture came from (the item's `path` is the local copy).
Both are NULL for items imported from files. Adding nullable columns is an ALTER TABLE in SQLite,
so existing catalogs upgrade without rebuilding the items table.

Revision ID: 0004
Revises: 0003
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('items', sa.Column('product_id', sa.Text(), nullable=True))
    op.add_column('items', sa.Column('image_url', sa.Text(), nullable=True))
    op.create_index('ix_items_product_id', 'items', ['product_id'], unique=True)


def downgrade() -> None:
    op.drop_index('ix_items_product_id', table_name='items')
    with op.batch_alter_table('items') as batch_op:
        batch_op.drop_column('image_url')
        batch_op.drop_column('product_id')
