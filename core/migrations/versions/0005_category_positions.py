"""category positions

Each category keeps the number the user presses for it (`position`, 1-based, shown in the panel):
deleting a category no longer renumbers the ones after it, and the user reorders by dragging.
Existing catalogs keep the order they showed (by id).

Revision ID: 0005
Revises: 0004
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('categories', sa.Column('position', sa.Integer(), nullable=False, server_default='0'))
    op.execute("UPDATE categories SET position = (SELECT COUNT(*) FROM categories AS c WHERE c.id <= categories.id)")


def downgrade() -> None:
    with op.batch_alter_table('categories') as batch:
        batch.drop_column('position')
