"""The catalog's tables, as SQLAlchemy 2.x ORM classes.

Changing a table means adding an Alembic revision under `core/migrations/versions`; the store
upgrades every catalog it opens, so a user's existing file survives a new release.
"""
from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (
    JSON,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    pass


class Item(Base):
    """One product image. A feed's `product_id`, where there is one, is the identity a re-imported
    feed updates by; two products may share a picture. Items without a product id are identified
    by `sha256` of the file's bytes (unique among them), which makes re-imports idempotent."""

    __tablename__ = "items"
    __table_args__ = (
        Index("ix_items_sha256_without_product", "sha256", unique=True, sqlite_where=text("product_id IS NULL")),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(Text, index=True)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    title: Mapped[str | None] = mapped_column(Text)
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    file_size: Mapped[int] = mapped_column(Integer)
    thumbnail: Mapped[bytes | None] = mapped_column(LargeBinary)
    product_id: Mapped[str | None] = mapped_column(Text, index=True, unique=True)
    image_url: Mapped[str | None] = mapped_column(Text)
    feed_category: Mapped[str | None] = mapped_column(Text)
    """The category the product's feed last gave it: a re-import relabels only when that changes."""
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Category(Base):
    __tablename__ = "categories"
    __table_args__ = {"sqlite_autoincrement": True}
    """A deleted category's id never comes back: a late import or an old undo that names it must
    not reach a newer category (migration 0011)."""

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(750), unique=True)  # store.MAX_NAME_LENGTH; SQLite keeps any length
    colour: Mapped[str] = mapped_column(String(7))
    position: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """The category's number (and key) for the user; stays put when others are deleted."""
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Label(Base):
    """A merchandiser's decision: this item is an example of that category (one per item)."""

    __tablename__ = "labels"

    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), primary_key=True)
    category_id: Mapped[int] = mapped_column(
        ForeignKey("categories.id", ondelete="CASCADE"), index=True
    )
    labelled_by: Mapped[str] = mapped_column(String(40), default="user")
    labelled_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Embedding(Base):
    """A feature vector per item and model, little-endian float32 bytes."""

    __tablename__ = "embeddings"

    model: Mapped[str] = mapped_column(String(120), primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), primary_key=True)
    vector: Mapped[bytes] = mapped_column(LargeBinary)


class EmbeddingVersion(Base):
    """A random token that triggers rewrite on every change to a model's vectors; names the vector cache's files."""

    __tablename__ = "embedding_versions"

    model: Mapped[str] = mapped_column(String(120), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)


class ModelRun(Base):
    """One fitted classifier; predictions point at the run that made them."""

    __tablename__ = "model_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    method: Mapped[str] = mapped_column(String(60))
    backbone: Mapped[str] = mapped_column(String(120))
    params: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Prediction(Base):
    """The latest prediction per item. `category_id` is NULL when the item is unassigned."""

    __tablename__ = "predictions"

    item_id: Mapped[int] = mapped_column(ForeignKey("items.id", ondelete="CASCADE"), primary_key=True)
    category_id: Mapped[int | None] = mapped_column(
        ForeignKey("categories.id", ondelete="SET NULL"), index=True
    )
    score: Mapped[float] = mapped_column(Float)
    ranking: Mapped[list] = mapped_column(JSON, default=list)
    model_run_id: Mapped[int] = mapped_column(ForeignKey("model_runs.id", ondelete="CASCADE"))
