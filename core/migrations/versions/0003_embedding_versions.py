"""embedding versions

`embedding_versions` holds one counter per model that triggers bump on every insert, update or
delete of that model's vectors (cascades from deleted items included). A memory-mapped copy of
the matrix (core/vector_cache.py) is named after the counter, so a copy whose name matches was
made from exactly the rows the catalog holds now. Counters start at a random number, so a
different catalog file put in the same place never matches an old copy by accident.

Revision ID: 0003
Revises: 0002
"""
from alembic import op
import sqlalchemy as sa


revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

RANDOM_START = "abs(random() % 1000000000000)"


def upgrade() -> None:
    op.create_table(
        'embedding_versions',
        sa.Column('model', sa.String(length=120), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('model'),
    )
    op.execute(
        "INSERT INTO embedding_versions (model, version)"
        f" SELECT model, {RANDOM_START} FROM (SELECT DISTINCT model FROM embeddings)"
    )
    op.execute(
        f"""
        CREATE TRIGGER embedding_versions_insert AFTER INSERT ON embeddings
        BEGIN
            INSERT INTO embedding_versions (model, version) VALUES (NEW.model, {RANDOM_START})
            ON CONFLICT (model) DO UPDATE SET version = version + 1;
        END
        """
    )
    op.execute(
        """
        CREATE TRIGGER embedding_versions_update AFTER UPDATE ON embeddings
        BEGIN
            UPDATE embedding_versions SET version = version + 1 WHERE model IN (OLD.model, NEW.model);
        END
        """
    )
    op.execute(
        """
        CREATE TRIGGER embedding_versions_delete AFTER DELETE ON embeddings
        BEGIN
            UPDATE embedding_versions SET version = version + 1 WHERE model = OLD.model;
        END
        """
    )


def downgrade() -> None:
    for trigger in ("insert", "update", "delete"):
        op.execute(f"DROP TRIGGER IF EXISTS embedding_versions_{trigger}")
    op.drop_table('embedding_versions')
