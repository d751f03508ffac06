"""catalog identity and state tokens

Three changes that keep a catalog from being mistaken for something else:

- `PRAGMA application_id` marks the file as a ProtoShelf catalog, so opening refuses another
  program's SQLite database instead of adding tables to it.
- The per-model counters of `embedding_versions` become random tokens: every change to a model's
  vectors writes a fresh random 64-bit value in the same transaction. A counter counts up again
  from a restored backup's value and so can name a cache made from other vectors; a random token
  never repeats.
- An index on `items.path`, so an import can find the item a changed file belongs to, and titles
  CSVs and `relocate` can match paths, without scanning the table.

Revision ID: 0006
Revises: 0005
"""
from alembic import op


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None

APPLICATION_ID = 0x50534846  # "PSHF"; protoshelf.core.store.APPLICATION_ID checks it


def _triggers(new_value: str) -> None:
    for trigger in ("insert", "update", "delete"):
        op.execute(f"DROP TRIGGER IF EXISTS embedding_versions_{trigger}")
    op.execute(
        f"""
        CREATE TRIGGER embedding_versions_insert AFTER INSERT ON embeddings
        BEGIN
            INSERT INTO embedding_versions (model, version) VALUES (NEW.model, random())
            ON CONFLICT (model) DO UPDATE SET version = {new_value};
        END
        """
    )
    op.execute(
        f"""
        CREATE TRIGGER embedding_versions_update AFTER UPDATE ON embeddings
        BEGIN
            UPDATE embedding_versions SET version = {new_value} WHERE model IN (OLD.model, NEW.model);
        END
        """
    )
    op.execute(
        f"""
        CREATE TRIGGER embedding_versions_delete AFTER DELETE ON embeddings
        BEGIN
            UPDATE embedding_versions SET version = {new_value} WHERE model = OLD.model;
        END
        """
    )


def upgrade() -> None:
    op.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    _triggers("random()")
    op.execute("UPDATE embedding_versions SET version = random()")
    op.create_index('ix_items_path', 'items', ['path'])


def downgrade() -> None:
    op.drop_index('ix_items_path', 'items')
    _triggers("version + 1")
    op.execute("PRAGMA application_id = 0")
