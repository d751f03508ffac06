"""The catalog store: one SQLite file per catalog, opened through SQLAlchemy.

Every connection gets the same pragmas (WAL so the GUI can read while a worker writes, a busy
timeout instead of "database is locked", foreign keys so deletes cascade). Writers take the
lock up front with BEGIN IMMEDIATE, which keeps SQLite from failing a transaction half-way when
two threads upgrade their read locks at once. Sessions are cheap: make one per thread and task.
"""
from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import stat
import time
import unicodedata
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

import numpy as np
from sqlalchemy import URL, create_engine, delete, event, func, literal, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from protoshelf.core import vector_cache
from protoshelf.core.constants import default_catalog_path  # noqa: F401 - where callers have always found it
from protoshelf.core.errors import UserError, user_message
from protoshelf.core.progress import Progress, no_progress
from protoshelf.core.schema import Category, Embedding, Item, Label, ModelRun, Prediction

PALETTE = (
    "#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6",
    "#bfef45", "#469990", "#9a6324", "#800000", "#808000", "#000075", "#a9a9a9",
)
MAX_NAME_LENGTH = 750
"""Google Merchant Center's limit for a product_type: a shop's category path must fit whole, or a
feed's product would come in unlabelled and a round trip would blank its product_type on the shop."""
BULK_ROWS = 20_000
"""Rows per step of a bulk read or write: predictions saved between progress calls, ids per range query."""
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
"""Embeddings, overrides and isolates: they make "\u202eseohS" display as "Shoes" (Trojan Source).
Right-to-left scripts and the plain RLM/LRM marks do not need them."""
DIRECTION_MARKS = frozenset("\u200e\u200f\u061c")
"""LRM, RLM, ALM: the plain marks right-to-left text needs; every other format character is refused."""
JOINERS = frozenset("\u200c\u200d")
"""ZWNJ and ZWJ shape emoji sequences and Persian or Indic words; between two ASCII characters
they only make "Fr\u200duit" look like "Fruit", so there they are refused."""
BUSY_TIMEOUT_S = 30.0
"""How long a writer waits for another's write lock before giving up with "the catalog is busy"."""
APPLICATION_ID = 0x50534846  # "PSHF", set by migration 0005
SQLITE_HEADER = b"SQLite format 3\x00"


class StoreError(UserError):
    """A request the catalog refuses, with a message meant for the user."""


class ProductIdsChanged(StoreError):
    """A feed names catalog products by other ids than before; the caller must say whether the new
    ids are the same products (`ids_changed=True`) or new ones (`False`)."""

    def __init__(self, new_id: str, old_id: str):
        self.new_id, self.old_id = new_id, old_id
        super().__init__(
            f"products of this feed have new ids but the pictures of catalog products it no longer lists "
            f"(e.g. {new_id!r} has the picture of {old_id!r}): did the feed's id column change? "
            "Import again with --ids-changed to give those items the new ids (labels stay), "
            "or with --new-ids to add them as new products")


def _on_connect(dbapi_connection, _record) -> None:
    dbapi_connection.isolation_level = None  # SQLAlchemy's "begin" event issues BEGIN itself
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
    _use_wal(cursor)
    cursor.execute("PRAGMA synchronous = NORMAL")
    cursor.execute("PRAGMA foreign_keys = ON")
    cursor.close()


def _use_wal(cursor: sqlite3.Cursor) -> None:
    """Switch the file to WAL. A connection that must write a new, still-empty file's header while
    another holds the write lock (processes opening a new catalog at once) is refused with
    "database is locked" at once, without the busy timeout, so the waiting happens here."""
    retry_while_locked(lambda: cursor.execute("PRAGMA journal_mode = WAL"), BUSY_TIMEOUT_S, pause_s=0.01)


def retry_while_locked(attempt: Callable[[], object], seconds: float, pause_s: float,
                       errors: type[Exception] | tuple[type[Exception], ...] = sqlite3.OperationalError):
    """`attempt()`, tried again while SQLite answers "locked", for up to `seconds`, with a pause
    between tries so that an answer given at once never makes it spin; any other error is raised."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return attempt()
        except errors as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(pause_s)


def _on_begin(connection) -> None:
    immediate = connection.get_execution_options().get("immediate", False)
    connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def make_engine(path: Path) -> Engine:
    # Built from the path, never pasted into a URL string: "sale%20items.sqlite" or "what?.sqlite"
    # must open exactly that file.
    engine = create_engine(
        URL.create("sqlite", database=str(path)), connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_S}
    )
    event.listen(engine, "connect", _on_connect)
    event.listen(engine, "begin", _on_begin)
    return engine


def check_catalog_file(path: Path) -> None:
    """Refuse, before anything is written to it, a path that is neither new, nor empty, nor a
    ProtoShelf catalog: another program's SQLite file must never gain our tables or WAL mode."""
    if path.is_dir():
        raise StoreError(f"{path} is a folder: give a catalog file, e.g. --db {path / 'catalog.sqlite'}")
    try:
        info = path.stat()
    except FileNotFoundError:
        return
    if not stat.S_ISREG(info.st_mode):
        raise StoreError(f"{path} is not a regular file, so it cannot be a catalog")
    if info.st_size == 0:
        return
    with open(path, "rb") as handle:
        if handle.read(len(SQLITE_HEADER)) != SQLITE_HEADER:
            raise StoreError(f"{path} is not a ProtoShelf catalog (not an SQLite database); it was left untouched")
    from protoshelf.core.migrations import known_revisions

    try:
        with contextlib.closing(sqlite3.connect(path, timeout=BUSY_TIMEOUT_S)) as raw:
            application_id = raw.execute("PRAGMA application_id").fetchone()[0]
            tables = {row[0] for row in raw.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            version = _schema_version(raw)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open {path}: {user_message(exc)}") from exc
    made_by_us = application_id == APPLICATION_ID or (  # catalogs from before migration 0005
        application_id == 0 and "items" in tables and version in known_revisions()
    )
    if not made_by_us and (tables or application_id):
        raise StoreError(f"{path} is another program's SQLite database, not a ProtoShelf catalog; "
                         "it was left untouched")
    if made_by_us and version is not None and version not in known_revisions():
        raise StoreError(f"{path} was made by a newer version of ProtoShelf: upgrade ProtoShelf to open it")


def _schema_version(raw: sqlite3.Connection) -> str | None:
    """The Alembic revision a file's schema is at, read without Alembic; None when it has none."""
    if not raw.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'alembic_version'").fetchone():
        return None
    return raw.execute("SELECT max(version_num) FROM alembic_version").fetchone()[0]


def needs_upgrade(path: str | Path) -> bool:
    """Whether opening this existing catalog will first migrate its schema, which can take minutes
    on a big one (a table rebuild), so callers can say so or do it off the GUI thread."""
    from protoshelf.core.migrations import head_revision, known_revisions

    path = Path(path).expanduser()
    if not path.is_file() or path.stat().st_size == 0:
        return False
    try:
        with contextlib.closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True,
                                                timeout=BUSY_TIMEOUT_S)) as raw:
            version = _schema_version(raw)
        return version in known_revisions() and version != head_revision()  # a newer one is refused, not upgraded
    except sqlite3.Error:
        return False  # opening it will say what is wrong


def validate_category_name(name: str) -> str:
    """Return the cleaned name or raise StoreError saying what is wrong with it."""
    cleaned = unicodedata.normalize("NFC", name).strip()
    kinds = {unicodedata.category(ch) for ch in cleaned}
    if all(kind[0] in "ZCM" for kind in kinds):  # nothing visible, or accents on nothing
        raise StoreError("A category needs a name.")
    if len(cleaned) > MAX_NAME_LENGTH:
        raise StoreError(f"Category names are limited to {MAX_NAME_LENGTH} characters.")
    if kinds & {"Cc", "Zl", "Zp"}:  # Zl, Zp: U+2028 and U+2029 break lines too
        raise StoreError("Category names cannot contain line breaks, tabs or control characters.")
    if "Cs" in kinds:
        raise StoreError("Category names must be valid Unicode text.")
    if BIDI_CONTROLS.intersection(cleaned):
        raise StoreError("Category names cannot contain invisible text-direction controls.")
    if unicodedata.category(cleaned[0])[0] == "M":
        raise StoreError("Category names cannot start with an accent or other combining mark.")
    if any(_invisible(cleaned, at) for at in range(len(cleaned))):
        raise StoreError("Category names cannot contain invisible characters such as zero-width spaces.")
    return cleaned


def _invisible(text: str, at: int) -> bool:
    char = text[at]
    if unicodedata.category(char) != "Cf" or char in DIRECTION_MARKS:
        return False
    if char in JOINERS and 0 < at < len(text) - 1:
        return text[at - 1].isascii() and text[at + 1].isascii()
    return True


def name_key(name: str) -> str:
    """What two category names must not share: they would look the same in a list, or differ only
    in case ("Fruit" and " fruit "), compatibility forms or direction marks."""
    visible = "".join(ch for ch in name if unicodedata.category(ch) != "Cf")
    return unicodedata.normalize("NFKC", visible).casefold().strip()


@dataclass(frozen=True)
class CategoryRow:
    id: int
    name: str
    colour: str
    examples: int
    predicted: int
    position: int = 0
    """The user's number for it (key 1-9 for the first nine); gaps stay where categories were deleted."""


@dataclass(frozen=True)
class Vectors:
    """Embeddings of one model: row i of `matrix` belongs to item `item_ids[i]`."""

    item_ids: np.ndarray
    matrix: np.ndarray

    def __len__(self) -> int:
        return len(self.item_ids)


@dataclass(frozen=True)
class ImportedFile:
    """A hashed (and, when its content is new, decoded) image file, ready to be stored."""

    path: str
    sha256: str
    width: int = 0
    height: int = 0
    file_size: int = 0
    thumbnail: bytes = b""


@dataclass(frozen=True)
class FeedProduct:
    """One product of a feed with its checked, hashed picture; `pixels` (width, height,
    thumbnail) is None when the catalog already holds the picture."""

    where: str
    """Where in the feed, for messages."""
    product_id: str | None
    title: str | None
    category: str | None
    image_url: str | None
    path: str
    sha256: str
    file_size: int
    pixels: tuple[int, int, bytes] | None = None


@dataclass
class FeedOutcome:
    """What saving one FeedProduct did: "added", "updated", "unchanged" (with the item id) or
    "failed" (with the reason); `notes` are refused category names (the product was still saved)."""

    outcome: str
    item_id: int | None = None
    reason: str = ""
    notes: list[str] = field(default_factory=list)
    former_id: str | None = None
    """The product id the item had before this feed renamed it."""


@dataclass
class Relocation:
    moved: int
    not_found: list[str]


def vector_to_bytes(vector: np.ndarray) -> bytes:
    return np.asarray(vector, "<f4").tobytes()


class Store:
    """A catalog file. Opening it upgrades its schema to the current version."""

    def __init__(self, path: str | Path):
        self.path = Path(path).expanduser().resolve()
        check_catalog_file(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._engine = make_engine(self.path)
        self._writer = self._engine.execution_options(immediate=True)
        from protoshelf.core.migrations import upgrade

        try:
            upgrade(self._engine)
        except OperationalError as exc:
            self._engine.dispose()
            raise StoreError(f"cannot open {self.path}: {user_message(exc)}") from exc

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    @contextmanager
    def _read(self) -> Iterator[Session]:
        with Session(self._engine, expire_on_commit=False) as session:
            yield session

    @contextmanager
    def _write(self) -> Iterator[Session]:
        """One all-or-nothing transaction holding SQLite's write lock from its start."""
        with Session(self._writer, expire_on_commit=False) as session, session.begin():
            yield session

    # --- categories -------------------------------------------------------------------

    def create_category(self, name: str, colour: str | None = None) -> int:
        """A new category numbered after the last one."""
        name = validate_category_name(name)
        with self._write() as s:
            if (clash := _same_name(s, name)) is not None:
                raise StoreError(f"A category named {clash[1]!r} already exists.")
            return _add_category(s, name, colour)

    def ensure_category(self, name: str) -> int:
        """The category this name means, created if there is none. Looked up under the write lock,
        so two processes labelling into the same new name at once share one category (looked up
        before it, one of them was refused as a clash)."""
        name = validate_category_name(name)
        with self._write() as s:
            found = _same_name(s, name)
            return found[0] if found is not None else _add_category(s, name, None)

    def category_id(self, name: str) -> int | None:
        """The category this name means: the same name up to case, spaces and Unicode form."""
        with self._read() as s:
            found = _same_name(s, name)
            return None if found is None else found[0]

    def rename_category(self, category_id: int, name: str) -> None:
        name = validate_category_name(name)
        with self._write() as s:
            clash = _same_name(s, name, besides=category_id)
            if clash is not None:
                raise StoreError(f"A category named {clash[1]!r} already exists.")
            s.execute(update(Category).where(Category.id == category_id).values(name=name))

    def recolour_category(self, category_id: int, colour: str) -> None:
        with self._write() as s:
            s.execute(update(Category).where(Category.id == category_id).values(colour=colour))

    def delete_category(self, category_id: int) -> dict[int, int]:
        """Delete a category with its labels; returns {item: category} so it can be undone."""
        with self._write() as s:
            removed = dict(
                s.execute(
                    select(Label.item_id, Label.category_id).where(Label.category_id == category_id)
                ).all()
            )
            s.execute(delete(Category).where(Category.id == category_id))
        return removed

    def restore_category(
        self, category_id: int, name: str, colour: str, labels: dict[int, int], position: int | None = None
    ) -> dict[int, int]:
        """Undo of delete_category: same id (predictions and history still refer to it), same number.
        An example labelled since (by another process) keeps its new label, as in `undo_labels`:
        returns those labels (restoring over them failed on the UNIQUE item, and the undo with it)."""
        with self._write() as s:
            if position is None:
                position = (s.scalar(select(func.max(Category.position))) or 0) + 1
            s.add(Category(id=category_id, name=name, colour=colour, position=position))
            s.flush()
            since = _labels_in(s, list(labels))
            s.add_all(Label(item_id=i, category_id=c) for i, c in labels.items() if i not in since)
        return since

    def categories(self) -> list[CategoryRow]:
        with self._read() as s:
            examples = dict(
                s.execute(select(Label.category_id, func.count()).group_by(Label.category_id)).all()
            )
            predicted = dict(
                s.execute(
                    select(Prediction.category_id, func.count())
                    .outerjoin(Label, Label.item_id == Prediction.item_id)
                    .where(Label.item_id.is_(None))
                    .group_by(Prediction.category_id)
                ).all()
            )
            return [
                CategoryRow(c.id, c.name, c.colour, examples.get(c.id, 0), predicted.get(c.id, 0), c.position)
                for c in s.scalars(select(Category).order_by(Category.position, Category.id))
            ]

    def reorder_categories(self, category_ids: Sequence[int]) -> None:
        """Put these categories in this order, on the numbers they hold between them (a drag in the
        panel renumbers only the rows it moves past; a gap left by a deletion stays)."""
        ids = [int(i) for i in category_ids]
        with self._write() as s:
            positions = sorted(s.scalars(select(Category.position).where(Category.id.in_(ids))).all())
            if len(positions) != len(ids):
                raise StoreError("A category to reorder no longer exists.")
            for category_id, position in zip(ids, positions):
                s.execute(update(Category).where(Category.id == category_id).values(position=position))

    # --- labels -----------------------------------------------------------------------

    def set_labels(self, item_ids: Iterable[int], category_id: int | None) -> dict[int, int | None]:
        """Label (or, with None, unlabel) items; returns their previous labels for undo."""
        ids = list(dict.fromkeys(int(i) for i in item_ids))
        with self._write() as s:
            previous: dict[int, int | None] = {**dict.fromkeys(ids), **_labels_in(s, ids)}
            _write_labels(s, dict.fromkeys(ids, category_id))
        return previous

    def undo_labels(self, before: dict[int, int | None], given: int | None,
                    leave: Iterable[int] = ()) -> dict[int, int | None]:
        """Put back `before` (from set_labels) on the items that still hold `given`, the label the
        step being undone gave them; returns the labels of the others, which someone relabelled
        since (the user while an import ran, another process): an undo must not take a later label.
        `leave`: items the caller knows were relabelled since, perhaps to `given` again."""
        leave = set(leave)
        with self._write() as s:
            now: dict[int, int | None] = {**dict.fromkeys(before), **_labels_in(s, list(before))}
            ours = {i: label for i, label in before.items() if now[i] == given and i not in leave}
            _write_labels(s, ours)
        return {i: label for i, label in now.items() if i not in ours}

    def labels(self, item_ids: Iterable[int] | None = None) -> dict[int, int]:
        """Every label, or those of `item_ids` (looked up by id, not read whole and filtered)."""
        with self._read() as s:
            if item_ids is None:
                return dict(s.execute(select(Label.item_id, Label.category_id)).all())
            return _labels_in(s, list(dict.fromkeys(int(i) for i in item_ids)))

    # --- items ------------------------------------------------------------------------

    def item_count(self) -> int:
        with self._read() as s:
            return s.scalar(select(func.count(Item.id))) or 0

    def item_ids(self) -> np.ndarray:
        """Sorted. Read with the bare driver from a (small) index, which SQLite scans
        instead of the table and its thumbnails when no order is asked: 2x faster at 1M items,
        and ORM rows were 2x slower again."""
        with self._engine.connect() as conn:
            cursor = conn.connection.driver_connection.execute("SELECT id FROM items")
            return np.sort(np.fromiter((row[0] for row in cursor), dtype=np.int64))

    def items(self, item_ids: Sequence[int]) -> dict[int, Item]:
        with self._read() as s:
            found: dict[int, Item] = {}
            for chunk in _chunks(list(item_ids)):
                found.update((it.id, it) for it in s.scalars(select(Item).where(Item.id.in_(chunk))))
            return found

    def search_texts(self, item_ids: Sequence[int]) -> dict[int, str]:
        """Each item's title, or its file name where it has none (what the app's search matches).

        Ids are read as ranges of the sorted ids, one query per range, without ORM objects: a
        million items in seconds, where `items()` took about a minute.
        """
        wanted = np.unique(np.asarray(item_ids, np.int64))
        texts: dict[int, str] = {}
        with self._engine.connect() as conn:
            raw = conn.connection.driver_connection
            for start in range(0, len(wanted), BULK_ROWS):
                block = wanted[start : start + BULK_ROWS]
                rows = raw.execute(
                    "SELECT id, title, path FROM items WHERE id BETWEEN ? AND ?", (int(block[0]), int(block[-1]))
                )
                members = set(block.tolist())
                texts.update((i, t or os.path.basename(p)) for i, t, p in rows if i in members)
        return texts

    def product_info(self, item_id: int) -> tuple[str | None, str | None]:
        """(product id, image URL) of an item from a feed; (None, None) for one from files."""
        with self._read() as s:
            row = s.execute(select(Item.product_id, Item.image_url).where(Item.id == item_id)).first()
        return (row[0], row[1]) if row else (None, None)

    def item_ids_by_product_id(self, product_ids: Iterable[str]) -> dict[str, int]:
        """The items of those product ids that the catalog holds."""
        wanted = list(dict.fromkeys(product_ids))
        found: dict[str, int] = {}
        with self._read() as s:
            for chunk in _chunks(wanted):
                found.update(s.execute(select(Item.product_id, Item.id).where(Item.product_id.in_(chunk))).all())
        return {p: found[p] for p in wanted if p in found}

    def item_id_by_hash(self, sha256: str) -> int | None:
        with self._read() as s:
            return s.scalar(select(Item.id).where(Item.sha256 == sha256))

    def set_title(self, item_id: int, title: str | None) -> None:
        with self._write() as s:
            s.execute(update(Item).where(Item.id == item_id).values(title=title or None))

    # --- import -------------------------------------------------------------------------

    def known_hashes(self, hashes: Sequence[str]) -> set[str]:
        with self._read() as s:
            return {h for chunk in _chunks(list(hashes)) for h in s.scalars(select(Item.sha256).where(Item.sha256.in_(chunk)))}

    def save_feed_products(
        self, products: Sequence[FeedProduct], labels: bool = True,
        feed_ids: Collection[str] | None = None, ids_changed: bool | None = None,
    ) -> list[FeedOutcome]:
        """Store one batch of feed products in one transaction; one outcome each, in order.

        A product is found by its id; a row without an id by its picture, among the items without
        one. A new product whose picture a folder's item holds takes that item over (its label and
        vectors stay). Products may share a picture (variants, bundles): a product whose picture
        the catalog holds already gets that item's thumbnail and image vectors, so a picture is
        decoded and embedded once. A row without an id whose picture only products hold counts as
        the first of them, unchanged. A new picture drops the item's image vectors and prediction.
        With `labels`, the product's category (created if missing) becomes the item's label.

        A new id whose picture a catalog product holds under an id missing from the feed
        (`feed_ids`) is that product renamed, when the feed's id column changed, or a new product
        sharing the picture: `ids_changed` says which; None refuses the batch (ProductIdsChanged),
        so a changed id column never silently doubles the catalog.
        """
        ids = [p.product_id for p in products if p.product_id]
        outcomes: list[FeedOutcome] = []
        with self._write() as s:
            by_product = {i.product_id: i for i in s.scalars(select(Item).where(Item.product_id.in_(ids)))}
            twins: dict[str, list[Item]] = {}
            hashes = list({p.sha256 for p in products})
            for item in s.scalars(select(Item).where(Item.sha256.in_(hashes)).order_by(Item.id)):
                twins.setdefault(item.sha256, []).append(item)
            renamed = _renamed_products(products, by_product, twins, feed_ids)
            if renamed and ids_changed is None:
                new, old = next(iter(renamed.items()))
                raise ProductIdsChanged(new, old.product_id)
            categories = dict(s.execute(select(Category.name, Category.id)).all())
            for p in products:
                holders = twins.setdefault(p.sha256, [])
                without_id = next((i for i in holders if i.product_id is None), None)
                item = (by_product.get(p.product_id) if p.product_id else None) or without_id
                former_id = None
                if item is None and ids_changed and p.product_id in renamed:
                    item = renamed[p.product_id]
                    former_id = item.product_id
                    by_product.pop(former_id, None)
                if item is None and holders and not p.product_id:
                    first = holders[0]
                    outcomes.append(FeedOutcome("unchanged", first.id, notes=[
                        f"{p.where}: same picture as product {first.product_id}; counted as that product"]))
                    continue
                if p.pixels is None and not holders:  # checked before this transaction, gone since
                    outcomes.append(FeedOutcome("failed", reason="the picture left the catalog meanwhile; import again"))
                    continue
                outcome = FeedOutcome("added")
                if item is None:
                    item = Item(product_id=p.product_id)
                    s.add(item)
                    _set_feed_picture(s, item, p, holders)
                    s.flush()
                    _share_vectors(s, item, holders)
                    holders.append(item)
                    if p.product_id:
                        by_product[p.product_id] = item
                    _set_feed_category(s, item, p, labels, categories, outcome.notes)
                    outcome.item_id = item.id
                    outcomes.append(outcome)
                    continue
                changed = False
                if item.product_id != p.product_id and p.product_id:
                    item.product_id, changed = p.product_id, True
                    by_product[p.product_id] = item
                if item.sha256 != p.sha256:
                    if item in (previous := twins.get(item.sha256, [])):
                        previous.remove(item)
                    _set_feed_picture(s, item, p, holders)
                    _share_vectors(s, item, holders)
                    holders.append(item)
                    changed = True
                if p.title and item.title != p.title:
                    item.title, changed = p.title, True
                if p.image_url != item.image_url or (p.image_url is None and item.path != p.path):
                    item.image_url, item.path, changed = p.image_url, p.path, True
                changed |= _set_feed_category(s, item, p, labels, categories, outcome.notes)
                s.flush()
                outcome.outcome, outcome.item_id = ("updated" if changed else "unchanged"), item.id
                outcome.former_id = former_id
                outcomes.append(outcome)
        return outcomes

    def save_imported(self, files: Sequence[ImportedFile], titles: dict[str, str]) -> list[tuple[str, int, str]]:
        """Store one batch of files in one transaction; returns (path, item id, outcome) each.

        Outcomes: "added"; "existing" (its content is in the catalog already: the item without a
        product id that holds it, else the first product that does); "moved" (content whose
        stored paths no longer exist: every item holding it there is re-pointed to this path, or
        a moved folder could never be fixed); "changed" (new content at a path items hold: they
        take the new hash, size and thumbnail and lose their image vectors, so thumbnail, hash
        and vector never disagree).
        """
        outcomes = []
        with self._write() as s:
            known: dict[str, list[list]] = {}
            for chunk in _chunks([f.sha256 for f in files]):
                for sha256, item_id, path, product_id in s.execute(
                    select(Item.sha256, Item.id, Item.path, Item.product_id)
                    .where(Item.sha256.in_(chunk)).order_by(Item.product_id.is_not(None), Item.id)
                ):
                    known.setdefault(sha256, []).append([item_id, path])
            new_paths = [f.path for f in files if f.sha256 not in known]
            at_path: dict[str, list[tuple[int, bool]]] = {}
            for chunk in _chunks(new_paths):
                for path, item_id, product_id in s.execute(
                    select(Item.path, Item.id, Item.product_id).where(Item.path.in_(chunk)).order_by(Item.id)
                ):
                    at_path.setdefault(path, []).append((item_id, product_id is None))
            for f in files:
                if f.sha256 in known:
                    holders = known[f.sha256]
                    gone = [h for h in holders if h[1] != f.path and not os.path.exists(h[1])]
                    for holder in gone:
                        s.execute(update(Item).where(Item.id == holder[0]).values(path=f.path))
                        holder[1] = f.path
                    outcomes.append((f.path, holders[0][0], "moved" if gone else "existing"))
                    continue
                content = dict(sha256=f.sha256, width=f.width, height=f.height, file_size=f.file_size,
                               thumbnail=f.thumbnail)
                if f.path in at_path:
                    # Every product at this path follows its file; at most one item without an id may hold a picture.
                    without_id = [i for i, free in at_path[f.path] if free][:1]
                    changed = [i for i, free in at_path[f.path] if not free] + without_id
                    s.execute(update(Item).where(Item.id.in_(changed)).values(**content))
                    s.execute(delete(Embedding).where(Embedding.item_id.in_(changed), ~Embedding.model.startswith("text:")))
                    item_id, outcome = (without_id or changed)[0], "changed"
                else:
                    item = Item(path=f.path, title=titles.get(f.path), **content)
                    s.add(item)
                    s.flush()
                    item_id, outcome = item.id, "added"
                known[f.sha256] = [[item_id, f.path]]
                outcomes.append((f.path, item_id, outcome))
        return outcomes

    def apply_titles(self, titles: dict[str, str], categories: dict[str, str]) -> tuple[int, list[str]]:
        """Set titles and labels, by item path, in one transaction; returns (items titled, problems).

        Paths go through a temporary table rather than IN-lists, so a million-row titles CSV
        neither hits SQLite's bound-variable cap nor scans the items once per chunk. Labels only
        name existing categories (compared as category names are: case and spaces aside).
        """
        ids_by_key = {}
        with self._read() as s:
            ids_by_key = {name_key(n): i for i, n in s.execute(select(Category.id, Category.name))}
        problems, category_ids = [], {}
        for path, name in categories.items():
            if (found := ids_by_key.get(name_key(name))) is None:
                problems.append(f"{path}: category {name!r} does not exist; label skipped")
            else:
                category_ids[path] = found
        with self._write() as s:
            raw = s.connection().connection.driver_connection
            raw.execute("CREATE TEMP TABLE IF NOT EXISTS given_titles (path TEXT PRIMARY KEY, title TEXT, category_id INTEGER)")
            raw.execute("DELETE FROM given_titles")
            raw.executemany(
                "INSERT INTO given_titles VALUES (?, ?, ?)",
                ((p, titles.get(p), category_ids.get(p)) for p in dict.fromkeys([*titles, *category_ids])),
            )
            updated = raw.execute(
                "UPDATE items SET title = (SELECT title FROM given_titles WHERE given_titles.path = items.path)"
                " WHERE path IN (SELECT path FROM given_titles WHERE title IS NOT NULL)"
            ).rowcount
            labelled = raw.execute(
                "SELECT items.id, given_titles.category_id FROM items JOIN given_titles USING (path)"
                " WHERE given_titles.category_id IS NOT NULL"
            ).fetchall()
            raw.execute("DELETE FROM given_titles")
            for block in _chunks(labelled, BULK_ROWS):
                s.execute(Label.__table__.insert().prefix_with("OR REPLACE"),
                          [{"item_id": i, "category_id": c} for i, c in block])
        return updated, problems

    def relocate(self, old_prefix: str, new_prefix: str) -> Relocation:
        """Point the items under folder `old_prefix` at the same relative path under `new_prefix`.

        An item moves only when a file of its recorded size is at the new place; the others keep
        their path and are listed, so a typo in a prefix changes nothing instead of breaking links.
        """
        old, new = os.path.normpath(old_prefix), os.path.normpath(new_prefix)
        under = old if old.endswith(os.sep) else old + os.sep
        with self._read() as s:
            rows = s.execute(
                select(Item.id, Item.path, Item.file_size).where(
                    (Item.path == old) | (func.substr(Item.path, 1, len(under)) == under)
                )
            ).all()
        moves, not_found = {}, []
        for item_id, path, size in rows:
            target = new if path == old else os.path.join(new, path[len(under):])
            try:
                fits = os.path.isfile(target) and os.path.getsize(target) == size
            except OSError:
                fits = False
            if fits:
                moves[item_id] = target
            else:
                not_found.append(target)
        with self._write() as s:
            for item_id, target in moves.items():
                s.execute(update(Item).where(Item.id == item_id).values(path=target))
        return Relocation(len(moves), not_found)

    def missing_files(self, limit: int = 1) -> list[str]:
        """Up to `limit` item paths whose file no longer exists, in item order."""
        missing = []
        with self._read() as s:
            for (path,) in s.execute(select(Item.path).order_by(Item.id)).yield_per(1000):
                if not os.path.exists(path):
                    missing.append(path)
                    if len(missing) >= limit:
                        break
        return missing

    # --- export -------------------------------------------------------------------------

    def export_rows(self, item_ids: Sequence[int] | None = None) -> Iterator[tuple]:
        """(id, path, title, label name, predicted name, score, ranking JSON, product id) per item, by
        id, streamed.

        A scope of ids goes through a temporary table, which has no bound-variable cap."""
        with self._engine.connect() as conn:
            raw = conn.connection.driver_connection
            if item_ids is None:
                yield from _fetch(raw.execute(_EXPORT_QUERY.format(where="")))
                return
            raw.execute("CREATE TEMP TABLE IF NOT EXISTS export_ids (id INTEGER PRIMARY KEY)")
            raw.execute("DELETE FROM export_ids")
            raw.executemany("INSERT OR IGNORE INTO export_ids VALUES (?)", ((int(i),) for i in item_ids))
            yield from _fetch(raw.execute(_EXPORT_QUERY.format(where="WHERE items.id IN (SELECT id FROM export_ids)")))
            raw.execute("DELETE FROM export_ids")

    def thumbnail(self, item_id: int) -> bytes | None:
        with self._read() as s:
            return s.scalar(select(Item.thumbnail).where(Item.id == item_id))

    def thumbnails(self, item_ids: Sequence[int]) -> dict[int, bytes | None]:
        found: dict[int, bytes | None] = {}
        with self._read() as s:
            for chunk in _chunks(list(item_ids)):
                found.update(s.execute(select(Item.id, Item.thumbnail).where(Item.id.in_(chunk))).all())
        return found

    # --- embeddings -------------------------------------------------------------------

    def items_without_embedding(self, model: str) -> list[tuple[int, str]]:
        """(id, path) of the items to embed with an image `model`: one per picture that lacks a
        vector (products sharing a picture get it copied by `save_embeddings`). The shared
        pictures are read first from the sha256 index (a tenth of a second at 200k items) and are
        usually none."""
        with self._engine.connect() as conn, conn.begin():  # one snapshot for both reads
            raw = conn.connection.driver_connection
            shared = {sha256 for (sha256,) in raw.execute(_SHARED_PICTURES)}
            rows = raw.execute(_WITHOUT_EMBEDDING, (model,))
            if not shared:
                return [(i, p) for i, p, _ in rows]
            chosen, taken = [], set()
            for item_id, path, sha256 in rows:
                if sha256 in shared:
                    if sha256 in taken:
                        continue
                    taken.add(sha256)  # the first item without a vector stands for the picture
                chosen.append((item_id, path))
            return chosen

    def save_embeddings(self, model: str, item_ids: Sequence[int], matrix: np.ndarray) -> None:
        """Store vectors; an image model's vector also goes to the other items holding the same
        picture that lack one, so a picture shared by products is embedded once."""
        with self._write() as s:
            s.execute(
                Embedding.__table__.insert().prefix_with("OR REPLACE"),
                [
                    {"item_id": int(i), "model": model, "vector": vector_to_bytes(v)}
                    for i, v in zip(item_ids, matrix)
                ],
            )
            if not model.startswith("text:"):
                raw = s.connection().connection.driver_connection
                for chunk in _chunks([int(i) for i in item_ids]):
                    raw.execute(_SHARE_VECTORS.format(ids=",".join("?" * len(chunk))), [model, *chunk])

    def load_embeddings(self, model: str) -> Vectors:
        """All vectors of a model as one contiguous float32 matrix, ordered by item id.

        Rows are copied a chunk at a time into a matrix allocated up front, so the peak is the
        matrix itself (fetching every row first, then joining them, peaked at 2.2 times that).
        Large matrices come from, or are saved to, the catalog's vector cache (a read-only
        memory map; see core/vector_cache.py).
        """
        with self._engine.connect() as conn, conn.begin():  # one snapshot for the count and the rows
            raw = conn.connection.driver_connection
            version = raw.execute("SELECT version FROM embedding_versions WHERE model = ?", (model,)).fetchone()
            cached = version and vector_cache.read(self.path, model, version[0])
            if cached:
                return Vectors(*cached)
            (count,) = raw.execute("SELECT count(*) FROM embeddings WHERE model = ?", (model,)).fetchone()
            if not count:
                return Vectors(np.empty(0, np.int64), np.empty((0, 0), np.float32))
            (row_bytes,) = raw.execute(
                "SELECT length(vector) FROM embeddings WHERE model = ? LIMIT 1", (model,)
            ).fetchone()
            ids = np.empty(count, np.int64)
            matrix = np.empty((count, row_bytes // 4), np.float32)
            cursor = raw.execute(
                "SELECT item_id, vector FROM embeddings WHERE model = ? ORDER BY item_id", (model,)
            )
            done = 0
            while rows := cursor.fetchmany(1024):
                ids[done : done + len(rows)] = [r[0] for r in rows]
                flat = np.frombuffer(b"".join(r[1] for r in rows), dtype="<f4")
                matrix[done : done + len(rows)] = flat.reshape(len(rows), -1)
                done += len(rows)
        if version and count >= vector_cache.MIN_ROWS:
            vector_cache.write(self.path, model, version[0], ids, matrix)
        matrix.flags.writeable = False  # like the mapped copy: what is derived from it cannot go stale
        return Vectors(ids, matrix)

    def has_embeddings(self, model: str) -> bool:
        """Whether any item has a vector of `model`: enough to offer a modality."""
        with self._read() as s:
            return s.scalar(select(Embedding.item_id).where(Embedding.model == model).limit(1)) is not None

    def titles_without_embedding(self, model: str) -> list[tuple[int, str]]:
        """(item id, stripped title) of every titled item that has no `model` vector yet."""
        with self._read() as s:
            has = select(Embedding.item_id).where(Embedding.model == model)
            rows = s.execute(
                select(Item.id, Item.title)
                .where(Item.title.is_not(None), Item.title != "", Item.id.not_in(has))
                .order_by(Item.id)
            )
            return [(i, t.strip()) for i, t in rows if t.strip()]

    def set_titles(self, titles: dict[int, str | None]) -> int:
        """Set many items' titles in one transaction. Unchanged titles are not written, so their
        vectors survive; returns how many changed."""
        changed = 0
        with self._write() as s:
            for item_id, title in titles.items():
                title = (title or "").strip() or None
                result = s.execute(
                    update(Item).where(Item.id == item_id, Item.title.is_distinct_from(title)).values(title=title)
                )
                changed += result.rowcount
        return changed

    def embedding_models(self) -> list[str]:
        with self._read() as s:
            return list(s.scalars(select(Embedding.model).distinct()))

    # --- predictions ------------------------------------------------------------------

    def save_predictions(
        self,
        method: str,
        backbone: str,
        params: dict,
        item_ids: Sequence[int],
        category_ids: Sequence[int | None],
        scores: Sequence[float],
        rankings: Iterable[list[tuple[int, float]]],
        progress: Progress = no_progress,
    ) -> int:
        """Replace all predictions with those of a new model run, in one transaction.

        Rows go in blocks straight to SQLite (a million through the ORM took ~50 s) with `progress`
        between blocks: a callback that raises rolls the whole save back, so a caller can give way
        to a label change instead of making it wait. A category deleted since the predictions were
        made is left out of them (its items unassigned), as deleting it does to saved ones: the
        window saves its last predictions when it closes, perhaps just after a delete.
        """
        total = len(item_ids)
        with self._write() as s:
            run = ModelRun(method=method, backbone=backbone, params=params)
            s.add(run)
            s.flush()
            s.execute(delete(Prediction))
            raw = s.connection().connection.driver_connection  # the same transaction, without the ORM
            alive = {category_id for (category_id,) in raw.execute("SELECT id FROM categories")}
            rows = (
                (int(i), int(c) if c is not None and int(c) in alive else None, float(p),
                 json.dumps([[int(k), round(float(v), 6)] for k, v in r if int(k) in alive]), run.id)
                for i, c, p, r in zip(item_ids, category_ids, scores, rankings)
            )
            done = 0
            progress(done, total)
            while block := list(islice(rows, BULK_ROWS)):
                raw.executemany(
                    "INSERT INTO predictions (item_id, category_id, score, ranking, model_run_id)"
                    " VALUES (?, ?, ?, ?, ?)", block,
                )
                done += len(block)
                progress(done, total)
            return run.id

    def predictions(self) -> dict[int, Prediction]:
        with self._read() as s:
            return {p.item_id: p for p in s.scalars(select(Prediction))}

    def integrity_check(self) -> str:
        with self._engine.connect() as conn:
            return conn.exec_driver_sql("PRAGMA integrity_check").scalar_one()


_EXPORT_QUERY = """
SELECT items.id, items.path, items.title, labelled.name, predicted.name,
       predictions.score, predictions.ranking, items.product_id
FROM items
LEFT JOIN labels ON labels.item_id = items.id
LEFT JOIN categories AS labelled ON labelled.id = labels.category_id
LEFT JOIN predictions ON predictions.item_id = items.id
LEFT JOIN categories AS predicted ON predicted.id = predictions.category_id
{where}
ORDER BY items.id
"""


_SHARED_PICTURES = "SELECT sha256 FROM items GROUP BY sha256 HAVING count(*) > 1"
_WITHOUT_EMBEDDING = """
SELECT id, path, sha256 FROM items WHERE id NOT IN (SELECT item_id FROM embeddings WHERE model = ?) ORDER BY id
"""

_SHARE_VECTORS = """
INSERT OR IGNORE INTO embeddings (model, item_id, vector)
SELECT embeddings.model, twin.id, embeddings.vector
FROM embeddings JOIN items ON items.id = embeddings.item_id
JOIN items AS twin ON twin.sha256 = items.sha256 AND twin.id != items.id
WHERE embeddings.model = ? AND embeddings.item_id IN ({ids})
"""


def _fetch(cursor, rows: int = 5000) -> Iterator[tuple]:
    while batch := cursor.fetchmany(rows):
        yield from batch


def _same_name(session: Session, name: str, besides: int | None = None) -> tuple[int, str] | None:
    """(id, name) of the category whose name_key equals this name's; categories are few."""
    key = name_key(name)
    for category_id, existing in session.execute(select(Category.id, Category.name)):
        if category_id != besides and name_key(existing) == key:
            return category_id, existing
    return None


def _renamed_products(
    products: Sequence[FeedProduct], by_product: dict[str, Item], twins: dict[str, list[Item]],
    feed_ids: Collection[str] | None,
) -> dict[str, Item]:
    """New product id -> the catalog product holding its picture under an id the feed lacks (each
    such product at most once: variants renamed at once share it, the second is a new item)."""
    renamed: dict[str, Item] = {}
    if feed_ids is None:
        return renamed
    taken: set[int] = set()
    for p in products:
        if not p.product_id or p.product_id in by_product or p.product_id in renamed:
            continue
        holder = next((h for h in twins.get(p.sha256, ())
                       if h.product_id and h.product_id not in feed_ids and h.id not in taken), None)
        if holder is not None:
            renamed[p.product_id] = holder
            taken.add(holder.id)
    return renamed


def _set_feed_picture(s: Session, item: Item, p: FeedProduct, holders: list[Item]) -> None:
    """A new picture for an item: what was computed from the old one (image vectors, prediction)
    goes; width, height and thumbnail come from the product, or from an item holding the picture."""
    if item.id is not None:
        s.execute(delete(Embedding).where(Embedding.item_id == item.id, ~Embedding.model.startswith("text:")))
        s.execute(delete(Prediction).where(Prediction.item_id == item.id))
    item.path, item.sha256, item.file_size, item.image_url = p.path, p.sha256, p.file_size, p.image_url
    twin = holders[0] if holders else None
    item.width, item.height, item.thumbnail = p.pixels or (twin.width, twin.height, twin.thumbnail)
    item.title = p.title or item.title


def _share_vectors(s: Session, item: Item, holders: list[Item]) -> None:
    """Give an item that takes a picture the catalog holds that picture's image vectors."""
    if holders:
        s.execute(
            Embedding.__table__.insert().prefix_with("OR IGNORE").from_select(
                ["model", "item_id", "vector"],
                select(Embedding.model, literal(item.id), Embedding.vector).where(
                    Embedding.item_id == holders[0].id, ~Embedding.model.startswith("text:")),
            )
        )


def _add_category(s: Session, name: str, colour: str | None) -> int:
    count = s.scalar(select(func.count(Category.id))) or 0
    last = s.scalar(select(func.max(Category.position))) or 0
    category = Category(name=name, colour=colour or PALETTE[count % len(PALETTE)], position=last + 1)
    s.add(category)
    s.flush()
    return category.id


def _set_feed_category(
    s: Session, item: Item, p: FeedProduct, labels: bool, categories: dict[str, int], notes: list[str]
) -> bool:
    """Label the item with the product's category (created if missing); True when the label changed.

    Only where the feed's category for the product is new: an item the feed categorised before
    keeps its label until the shop changes the product's category, so a label set by hand survives
    a re-import of the same feed. An existing item's label is also kept where the feed's earlier
    category is unknown (imported from files, or before catalogs recorded it)."""
    if not labels or not p.category:
        return False
    try:
        name = validate_category_name(p.category)
    except StoreError as exc:  # said on every import, until the shop changes it
        notes.append(f"{p.where}: category {p.category!r} refused: {exc}")
        return False
    earlier, item.feed_category = item.feed_category, p.category
    current = s.get(Label, item.id)
    if earlier == p.category or (earlier is None and current is not None):
        return False
    if name not in categories:
        categories[name] = _add_category(s, name, None)
    if current is not None and current.category_id == categories[name]:
        return False
    s.merge(Label(item_id=item.id, category_id=categories[name]))
    return True


def _chunks(values: list, size: int = 900) -> Iterator[list]:
    """SQLite caps bound parameters per statement; IN-lists go in slices under that cap."""
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _labels_in(s: Session, item_ids: list[int]) -> dict[int, int]:
    """The labels of these items (the unlabelled left out), read in the caller's transaction."""
    found: dict[int, int] = {}
    for chunk in _chunks(item_ids):
        found.update(s.execute(select(Label.item_id, Label.category_id).where(Label.item_id.in_(chunk))).all())
    return found


def _write_labels(s: Session, labels: dict[int, int | None]) -> None:
    """Give each item its label (None: none), replacing any it had, in the caller's transaction."""
    for chunk in _chunks(list(labels)):
        s.execute(delete(Label).where(Label.item_id.in_(chunk)))
    s.add_all(Label(item_id=i, category_id=c) for i, c in labels.items() if c is not None)
