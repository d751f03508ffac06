"""items identity by product id

Two products of a feed may share one picture (variants, bundles), so `items.sha256` can no longer
be UNIQUE: a product is identified by its id, and only items without a product id (imported from
files, or feed rows without an id) by their content. A partial unique index keeps that rule in
the database; a plain index keeps lookups by hash fast.

SQLite cannot drop a constraint in place, so the table is rebuilt (Alembic's batch "recreate":
copy, drop, rename). env.py turns foreign keys off around the migration, so dropping the old
table cascades nothing away from labels, embeddings and predictions, and checks them afterwards.
Triggers on `items` go with the old table; they are read first and recreated.

Revision ID: 0007
Revises: 0006
"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def _items(unique_sha256: bool) -> sa.Table:
    """The items table as 0006 left it, with or without UNIQUE (sha256)."""
    return sa.Table(
        'items', sa.MetaData(),
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('path', sa.Text(), nullable=False),
        sa.Column('sha256', sa.String(length=64), nullable=False),
        sa.Column('title', sa.Text(), nullable=True),
        sa.Column('width', sa.Integer(), nullable=False),
        sa.Column('height', sa.Integer(), nullable=False),
        sa.Column('file_size', sa.Integer(), nullable=False),
        sa.Column('thumbnail', sa.LargeBinary(), nullable=True),
        sa.Column('added_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('product_id', sa.Text(), nullable=True),
        sa.Column('image_url', sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        *([sa.UniqueConstraint('sha256')] if unique_sha256 else []),
        sa.Index('ix_items_product_id', 'product_id', unique=True),
        sa.Index('ix_items_path', 'path'),
    )


def _rebuild(unique_sha256: bool) -> None:
    connection = op.get_bind()
    if connection.exec_driver_sql("PRAGMA foreign_keys").scalar():
        raise RuntimeError("rebuilding the items table with foreign keys on would delete every label and vector")
    triggers = connection.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'items'").scalars().all()
    with op.batch_alter_table('items', recreate='always', copy_from=_items(unique_sha256)):
        pass
    for trigger in triggers:
        op.execute(trigger)


def upgrade() -> None:
    _rebuild(unique_sha256=False)
    op.create_index('ix_items_sha256', 'items', ['sha256'])
    op.create_index('ix_items_sha256_without_product', 'items', ['sha256'], unique=True,
                    sqlite_where=sa.text('product_id IS NULL'))


def downgrade() -> None:
    shared = op.get_bind().exec_driver_sql(
        "SELECT count(*) FROM (SELECT sha256 FROM items GROUP BY sha256 HAVING count(*) > 1)").scalar()
    if shared:
        raise RuntimeError(f"{shared} pictures belong to more than one product; "
                           "the schema before 0007 cannot hold them")
    op.drop_index('ix_items_sha256_without_product', 'items')
    op.drop_index('ix_items_sha256', 'items')
    _rebuild(unique_sha256=True)
