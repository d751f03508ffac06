"""feed categories numbered

Categories that a product feed created before the fix of 5ea24de were stored with position 0
instead of the next number, so they showed "0" in the panel and no number key reached them. They
get the numbers after the highest one, in the order they were created. Nothing else has position 0
(numbers start at 1), and the schema does not change, so there is nothing to undo.

Revision ID: 0010
Revises: 0009
"""
from alembic import op


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    connection = op.get_bind()
    unnumbered = [row[0] for row in connection.exec_driver_sql(
        "SELECT id FROM categories WHERE position = 0 ORDER BY id")]
    last = connection.exec_driver_sql("SELECT COALESCE(MAX(position), 0) FROM categories").scalar()
    for number, category_id in enumerate(unnumbered, start=last + 1):
        connection.exec_driver_sql("UPDATE categories SET position = ? WHERE id = ?", (number, category_id))


def downgrade() -> None:
    pass
