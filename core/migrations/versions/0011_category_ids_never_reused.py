"""category ids never reused

SQLite gives a new row the highest id + 1, so deleting the newest category and creating another
gave the new one the deleted one's id. A drop import that finished after the delete then labelled
its files with the new category, and an undo in a window that had not seen another program's new
category deleted it with its examples. AUTOINCREMENT keeps an id for one category for the file's
life; SQLite adds it only by rebuilding the table. The ids stay as they are, so labels, predictions
and feeds keep pointing at the same categories.

Revision ID: 0011
Revises: 0010
"""
from alembic import op


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def _rebuild(autoincrement: bool) -> None:
    if op.get_bind().exec_driver_sql("PRAGMA foreign_keys").scalar():
        raise RuntimeError("rebuilding the categories table with foreign keys on would delete every label")
    with op.batch_alter_table('categories', recreate='always', table_kwargs={'sqlite_autoincrement': autoincrement}):
        pass


def upgrade() -> None:
    _rebuild(autoincrement=True)


def downgrade() -> None:
    _rebuild(autoincrement=False)
