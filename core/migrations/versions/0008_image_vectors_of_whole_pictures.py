"""image vectors of whole pictures

The model input changed from "resize the short side, centre-crop 87.5%" to the whole picture
resized to the model's square (core/model_input.py), so every vector computed from pixels (a
backbone's, a fine-tuned backbone's, and the concept vectors derived from them) is dropped here and
recomputed by the next embed step: a catalog never holds vectors of both kinds, which would compare
as if the same picture had changed. Title vectors (`text:*`) do not depend on pixels and stay.
An older ProtoShelf refuses a catalog at this revision, so it cannot add old-style vectors back.
Deleting fires the `embedding_versions` triggers, so memory-mapped vector caches go stale too.

Revision ID: 0008
Revises: 0007
"""
from alembic import op


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("DELETE FROM embeddings WHERE model NOT LIKE 'text:%'")


def downgrade() -> None:
    """Nothing to restore: the older code embeds again whatever has no vector."""
