"""text embeddings follow titles

A title vector describes one title: when an item's title changes (the app's preview dialog, a
titles CSV, Store.set_title, any UPDATE), its `text:*` embeddings are deleted in the same
transaction, so the next embed step redoes exactly those items.

Revision ID: 0002
Revises: 0001
"""
from alembic import op


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TRIGGER text_embeddings_follow_titles
        AFTER UPDATE OF title ON items
        WHEN OLD.title IS NOT NEW.title
        BEGIN
            DELETE FROM embeddings WHERE item_id = NEW.id AND model LIKE 'text:%';
        END
        """
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS text_embeddings_follow_titles")
