"""feed category of each product

What the shop's feed last gave as a product's category. A re-imported feed changes an item's label
only where the feed's category for that product changed, so a label the user set by hand survives
re-importing the same feed (it was put back to the feed's category). NULL for items imported from
files, for catalogs from before this revision, and for feeds imported with `--no-labels`; a
re-import then leaves an existing label as it is. Adding a nullable column is an ALTER TABLE.

Revision ID: 0009
Revises: 0008
"""
from alembic import op
import sqlalchemy as sa


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('items', sa.Column('feed_category', sa.Text(), nullable=True))


def downgrade() -> None:
    """SQLite drops a column by rebuilding the table, and the triggers on `items` (0002's) go with
    the old one: they are read first and recreated, as 0007 does."""
    connection = op.get_bind()
    if connection.exec_driver_sql("PRAGMA foreign_keys").scalar():
        raise RuntimeError("rebuilding the items table with foreign keys on would delete every label and vector")
    triggers = connection.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'items'").scalars().all()
    with op.batch_alter_table('items') as batch_op:
        batch_op.drop_column('feed_category')
    for trigger in triggers:
        op.execute(trigger)
