"""category ids never reused

SQLite gives a new row the highest id + 1, so deleting the newest category and creating another
gave the new one the deleted one's id. A drop import that finished after the delete then labelled
its files with the new category, and an undo in a window that had not seen another program's new
category deleted it with its examples. AUTOINCREMENT keeps an id for one category for the file's
life; SQLite adds it only by rebuilding the table. The ids stay as they are, so labels, predictions
and feeds keep pointing at the same categories. The rebuilt table also declares names as long as
Google's product_type (750 characters; SQLite never enforced the 120 declared before).

Revision ID: 0011
Revises: 0010
"""
from alembic import op
import sqlalchemy as sa


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def _rebuild(autoincrement: bool, name_length: int) -> None:
    if op.get_bind().exec_driver_sql("PRAGMA foreign_keys").scalar():
        raise RuntimeError("rebuilding the categories table with foreign keys on would delete every label")
    with op.batch_alter_table('categories', recreate='always',
                              table_kwargs={'sqlite_autoincrement': autoincrement}) as batch:
        batch.alter_column('name', type_=sa.String(name_length), existing_nullable=False)


def upgrade() -> None:
    _rebuild(autoincrement=True, name_length=750)


def downgrade() -> None:
    _rebuild(autoincrement=False, name_length=120)
