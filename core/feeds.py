"""Reading a shop's product feed: a CSV or TSV export with a header row, or a Merchant Center
XML (RSS or Atom) feed.

Shops name their columns differently (Shopify `Handle`/`Image Src`, WooCommerce `SKU`/`Images`,
Google Merchant Center `id`/`image_link`), so columns are found by role through case-insensitive
aliases. The separator is the one the header row uses most (`,`, `;` or tab), so Excel's
semicolon CSVs read as well. The feed is read twice, streaming: the first pass finds the last row
of each product id (the last one wins, as in a shop's own importer), the second yields rows, so
memory holds the ids and never the rows.
"""
from __future__ import annotations

import csv
import os
import re
from xml.etree import ElementTree
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlsplit

FEED_SUFFIXES = {".csv", ".tsv", ".txt", ".xml"}
XML = "xml"
"""The `separator` of an XML feed."""
XML_FIELDS = {"product_id": "id", "title": "title", "image": "image_link", "category": "product_type"}
"""Merchant Center's own names (g:id, g:image_link…); an XML feed has no header to search."""
MAX_HEADER_CHARS = 64 * 1024
"""A real header is a few hundred characters; a binary file or a one-line dump is refused unread."""
SEPARATORS = (",", ";", "\t")

ALIASES = {
    "product_id": ("id", "product_id", "sku", "variant sku", "handle"),
    "title": ("title", "name"),
    "image": ("image_link", "image src", "image", "image_url", "images", "additional_image_link"),
    "category": ("product_type", "categories", "type", "category", "google_product_category"),
}
"""Column names per role, in order of preference; matched ignoring case, `_`, `-` and spaces.
`categories` comes before `type`: a WooCommerce export has both, and its Type is the product's
kind (simple, variable, variation), not its category."""


class FeedError(ValueError):
    """A feed that cannot be read at all, with a message naming the file and the fix."""


@dataclass(frozen=True)
class FeedRow:
    line: int
    product_id: str | None
    title: str | None
    image: str
    category: str | None
    unit: str = "line"
    """"line" of a CSV, "item" of an XML feed."""

    @property
    def holds_nul(self) -> bool:
        """A NUL character in a cell: binary data, or a file saved in another encoding, never a product's text."""
        return any("\x00" in value for value in (self.product_id, self.title, self.image, self.category) if value)

    @property
    def where(self) -> str:
        return f"{self.unit} {self.line}" + (f" (product {self.product_id})" if self.product_id else "")


@dataclass
class Feed:
    path: Path
    columns: dict[str, str]
    """role -> the header's own spelling of that column."""
    separator: str
    rows_total: int = 0
    problems: list[str] = field(default_factory=list)
    """Duplicate ids and rows without an id: reported, never fatal."""
    _keep: dict[str, int] = field(default_factory=dict, repr=False)
    _shopify: bool = False

    @property
    def product_ids(self) -> Collection[str]:
        """Every product id in the feed."""
        return self._keep.keys()

    def rows(self) -> Iterator[FeedRow]:
        """Each product once (its last row), then the rows without an id, in file order."""
        for number, line, row in self._records():
            product_id = self._cell(row, "product_id")
            if product_id and self._keep.get(product_id) != number:
                continue
            yield FeedRow(
                line, product_id or None, self._cell(row, "title") or None,
                self._image(row), self._category(row) or None, "item" if self.separator == XML else "line",
            )

    def _category(self, row: dict[str, str]) -> str:
        """WooCommerce lists every category of a product, each as its full path ("Clothing,
        Clothing > Hoodies, Sale", commas in names as \\,): the deepest path is the most specific,
        the first of those the one to keep."""
        category = self._cell(row, "category")
        if _column_key(self.columns.get("category", "")) == "categories" and category:
            paths = [path.replace("\\,", ",").strip() for path in re.split(r"(?<!\\),", category)]
            category = max(paths, key=lambda path: path.count(">"))
        return category

    def _image(self, row: dict[str, str]) -> str:
        image = self._cell(row, "image")
        if _column_key(self.columns["image"]) in ("images", "additional image link"):
            image = image.split(",")[0].strip()  # a list of links: the first is the main picture
        return image

    def _cell(self, row: dict[str, str], role: str) -> str:
        column = self.columns.get(role)
        return (row.get(column) or "").strip() if column else ""

    def _records(self) -> Iterator[tuple[int, int, dict[str, str]]]:
        """(record number, line where it ends, row) for each data row."""
        if self.separator == XML:
            yield from _xml_records(self.path)
            return
        with _open(self.path) as handle:
            reader = csv.DictReader(handle, delimiter=self.separator)
            try:
                for number, row in enumerate(reader):
                    yield number, reader.line_num, row
            except UnicodeDecodeError as exc:
                raise FeedError(f"{self.path} is not UTF-8 text: save it as \"CSV UTF-8\" and try again") from exc
            except csv.Error as exc:  # a cell over the csv module's 128 KiB limit, a NUL byte
                raise FeedError(f"{self.path}, near line {reader.line_num + 1}: {exc}") from exc


def _xml_records(path: Path) -> Iterator[tuple[int, int, dict[str, str]]]:
    """The <item>s (RSS) or <entry>s (Atom) of a Merchant Center XML feed, streamed: each element
    is dropped once read. Fields are keyed by their name without the g: namespace; expat refuses
    entity-expansion bombs and ElementTree never fetches external entities."""
    number = 0
    try:
        for _, element in ElementTree.iterparse(path, events=("end",)):
            if _local(element.tag) not in ("item", "entry"):
                continue
            row = {_local(child.tag): (child.text or "").strip() for child in element}
            row.setdefault("product_type", row.get("google_product_category", ""))
            if not row.get("image_link"):  # Atom feeds may put the picture in <link rel="enclosure" href>
                row["image_link"] = next((c.get("href", "") for c in element if c.get("rel") == "enclosure"), "")
            number += 1
            yield number - 1, number, row
            element.clear()
    except ElementTree.ParseError as exc:
        raise FeedError(f"{path}: not a well-formed XML feed ({exc})") from exc


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1].lower()


def is_feed(path: str | Path) -> bool:
    return Path(path).suffix.lower() in FEED_SUFFIXES


def read_feed(path: str | Path) -> Feed:
    """Check the header and count the rows; `Feed.rows()` then streams them."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FeedError(f"{path}: not a file" if path.exists() else f"{path}: no such file")
    if path.suffix.lower() == ".xml":
        feed = Feed(path, dict(XML_FIELDS), XML)
        _first_pass(feed)
        return feed
    header = _header_line(path)
    separator = "\t" if path.suffix.lower() == ".tsv" else max(SEPARATORS, key=header.count)
    names = next(csv.reader([header], delimiter=separator))
    by_lower = {_column_key(name): name for name in reversed(names)}  # the first of two wins
    columns = {
        role: by_lower[_column_key(alias)]
        for role, aliases in ALIASES.items()
        for alias in reversed(aliases) if _column_key(alias) in by_lower
    }
    shopify = "handle" in by_lower
    if shopify:
        columns["product_id"] = by_lower["handle"]  # Type and Title are per product, not per variant
    if "image" not in columns:
        found = ", ".join(repr(n) for n in names[:20]) + (" …" if len(names) > 20 else "")
        raise FeedError(
            f"{path} has no image column (one of {', '.join(ALIASES['image'])}); columns found: {found}"
        )
    feed = Feed(path, columns, separator, _shopify=shopify)
    _first_pass(feed)
    return feed


def _column_key(name: str) -> str:
    """"Image Link", "image_link" and "IMAGE-LINK" name one column."""
    return " ".join(name.lower().replace("_", " ").replace("-", " ").split())


def _open(path: Path):
    return open(path, newline="", encoding="utf-8-sig")


def _header_line(path: Path) -> str:
    try:
        with _open(path) as handle:
            header = handle.readline(MAX_HEADER_CHARS + 1)
    except UnicodeDecodeError as exc:
        raise FeedError(f"{path} is not UTF-8 text: save it as \"CSV UTF-8\" and try again") from exc
    if len(header) > MAX_HEADER_CHARS:
        raise FeedError(f"{path}: the header row is longer than {MAX_HEADER_CHARS // 1024} KiB; is this a product feed?")
    if not header.strip():
        raise FeedError(f"{path} is empty: the first row must name the columns")
    return header.rstrip("\r\n")


def _first_pass(feed: Feed) -> None:
    """Count rows, find each id's last row, and note duplicates and rows without an id.

    In a Shopify export a product's extra variant and image rows repeat its handle with an empty
    title: they continue the product rather than duplicate it."""
    lines: dict[str, list[int]] = {}
    without_id = 0
    unit = "item" if feed.separator == XML else "line"
    for number, line, row in feed._records():
        feed.rows_total += 1
        product_id = feed._cell(row, "product_id")
        if not product_id:
            without_id += 1
            if without_id <= 10 and "product_id" in feed.columns:
                feed.problems.append(f"{feed.path}, {unit} {line}: no product id; the item is identified by its picture")
            continue
        if feed._shopify and product_id in feed._keep and not feed._cell(row, "title"):
            continue
        feed._keep[product_id] = number
        lines.setdefault(product_id, []).append(line)
    if without_id > 10 and "product_id" in feed.columns:
        feed.problems.append(f"{feed.path}: {without_id} rows in all have no product id")
    if "product_id" not in feed.columns:
        feed.problems.append(
            f"{feed.path} has no product id column ({', '.join(ALIASES['product_id'])}): "
            "items are identified by their pictures"
        )
    for product_id, at in lines.items():
        if len(at) > 1:
            feed.problems.append(
                f"{feed.path}: product id {product_id!r} appears {len(at)} times ({unit}s "
                f"{', '.join(map(str, at[:5]))}{' …' if len(at) > 5 else ''}); the last one wins"
            )


def image_source(reference: str, feed_folder: Path) -> tuple[str, str]:
    """("url", URL) for http(s), ("file", path) for a file:// URL or a path relative to the feed.

    Raises ValueError for an empty reference or another URL scheme."""
    if not reference:
        raise ValueError("no image")
    parts = urlsplit(reference)
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        return "url", reference
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ValueError(f"file URL on another host ({parts.netloc})")
        return "file", unquote(parts.path)
    if len(scheme) > 1:  # one letter is a Windows drive, C:\…
        raise ValueError(f"unsupported image link ({scheme}:)")
    return "file", os.path.join(feed_folder, reference)
