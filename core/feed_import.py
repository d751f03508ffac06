"""Import a shop's product feed: one item per product id, updated in place on re-import.

Rows go in batches: the batch's image URLs are downloaded concurrently (core/downloads.py), local
files are checked and hashed, only new pictures are decoded, and the batch is written in one
transaction. A killed import keeps every finished batch and its downloads; a rerun finds the
products already there (unchanged) and the pictures already in the cache. A row that fails
(404, timeout, not an image, too large) is reported with its reason and never stops the import.
"""
from __future__ import annotations

import os
import stat
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from protoshelf.core.downloads import ImageDownloader
from protoshelf.core.feeds import Feed, FeedRow, image_source, read_feed
from protoshelf.core.images import ImageError, check_file_size, file_sha256, open_image, thumbnail_bytes
from protoshelf.core.progress import Progress, no_progress
from protoshelf.core.store import FeedProduct, Store

BATCH_ROWS = 256


@dataclass
class FeedReport:
    added: list[int] = field(default_factory=list)
    updated: list[int] = field(default_factory=list)
    unchanged: list[int] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    """(where in the feed, reason)."""
    notes: list[str] = field(default_factory=list)
    """Duplicate ids, rows without an id, refused category names: the rows were still imported."""
    renamed: list[tuple[str, str]] = field(default_factory=list)
    """(former id, new id) of items a feed with a changed id column renamed."""

    def summary(self) -> str:
        return (
            f"{len(self.added)} added, {len(self.updated)} updated, {len(self.unchanged)} unchanged, "
            f"{len(self.failed)} failed"
        )

    def renamed_note(self) -> str | None:
        """What the user asked for happened (`ids_changed`): said with the summary, not as a problem."""
        if not self.renamed:
            return None
        (former, new), more = self.renamed[0], len(self.renamed) - 1
        return (f"{len(self.renamed)} products took the feed's new ids, keeping their labels "
                f"(e.g. {former!r} is now {new!r}{f' and {more} more' if more else ''})")


@dataclass(frozen=True)
class _Import:
    """What every batch of one import shares."""

    store: Store
    feed: Feed
    downloader: ImageDownloader
    pool: ThreadPoolExecutor
    labels: bool
    ids_changed: bool | None
    report: FeedReport


@dataclass(frozen=True)
class _Picture:
    """A row's image, checked and hashed; decoded only when the catalog lacks it."""

    row: FeedRow
    url: str | None = None
    path: str = ""
    sha256: str = ""
    file_size: int = 0
    error: str = ""


def import_feed(
    store: Store,
    feed_path: str | Path | Feed,
    labels: bool = True,
    downloader: ImageDownloader | None = None,
    progress: Progress = no_progress,
    workers: int = 4,
    ids_changed: bool | None = None,
) -> FeedReport:
    """Import every product of the feed; `labels=False` ignores its category column.

    New ids whose pictures belong to catalog products the feed no longer lists stop the import
    (ProductIdsChanged, before that batch is written) unless `ids_changed` says whether they are
    those products renamed (True) or new products (False).

    One pool checks and decodes, the downloader's one pool downloads, for the whole import; both
    are ended on the way out, cancelled or not. `feed_path` may be a feed already read (and so
    checked) by `read_feed`."""
    feed = feed_path if isinstance(feed_path, Feed) else read_feed(feed_path)
    report = FeedReport(notes=list(feed.problems))
    downloader = downloader or ImageDownloader()
    done = 0
    progress(0, feed.rows_total)
    batch: list[FeedRow] = []

    def downloading(count: int, of: int) -> None:
        """The batch's downloads move the bar (short of the batch's end: it is written after)."""
        progress(done + len(batch) * count // of - (count == of), feed.rows_total)

    with ThreadPoolExecutor(max_workers=workers) as pool, downloader:
        run = _Import(store, feed, downloader, pool, labels, ids_changed, report)
        for row in feed.rows():
            batch.append(row)
            if len(batch) == BATCH_ROWS:
                _import_batch(run, batch, downloading)
                done += len(batch)
                progress(done, feed.rows_total)
                batch = []
        _import_batch(run, batch, downloading)
    progress(feed.rows_total, feed.rows_total)
    return report


def _import_batch(run: _Import, batch: list[FeedRow], downloading: Callable[[int, int], None]) -> None:
    if not batch:
        return
    sources: list[tuple[str, str] | str] = []
    for row in batch:
        try:
            if row.holds_nul:
                raise ValueError("a cell holds a NUL character: is this really a CSV saved as UTF-8?")
            sources.append(image_source(row.image, run.feed.path.parent))
        except ValueError as exc:
            sources.append(str(exc))
    urls = (s[1] for s in sources if isinstance(s, tuple) and s[0] == "url")
    downloads = run.downloader.fetch_all(urls, downloading)
    pictures = list(run.pool.map(lambda rs: _examine(rs[0], rs[1], downloads), zip(batch, sources)))
    run.report.failed.extend((p.row.where, p.error) for p in pictures if p.error)
    good = [p for p in pictures if not p.error]
    known = run.store.known_hashes([p.sha256 for p in good])
    new = {p.sha256: p for p in good if p.sha256 not in known}
    decoded = dict(zip(new, run.pool.map(_decode, new.values())))
    _write(run, good, decoded)


def _examine(row: FeedRow, source, downloads) -> _Picture:
    """The row's local file, refused before it is opened when it is no regular file (a FIFO
    would block the read forever, a device would never end), then hashed."""
    if isinstance(source, str):
        return _Picture(row, error=source)
    kind, where = source
    url = where if kind == "url" else None
    if url:
        download = downloads[url]
        if download.error:
            return _Picture(row, url, error=download.error)
        where = str(download.path)
    try:
        info = os.stat(where)
        if not stat.S_ISREG(info.st_mode):
            return _Picture(row, url, error="not a regular file (a folder, device or pipe)")
        check_file_size(info.st_size)
        return _Picture(row, url, str(Path(where).resolve()), file_sha256(Path(where)), info.st_size)
    except ImageError as exc:
        return _Picture(row, url, error=str(exc))
    except FileNotFoundError:
        return _Picture(row, url, error=f"file not found ({where})")
    except PermissionError:
        return _Picture(row, url, error="permission denied")
    except OSError as exc:
        return _Picture(row, url, error=f"cannot read file ({exc.strerror or exc})")


def _decode(picture: _Picture) -> tuple[int, int, bytes] | str:
    try:
        image = open_image(Path(picture.path), min_side=256)
        return image.width, image.height, thumbnail_bytes(image)
    except ImageError as exc:
        return str(exc)
    except OSError as exc:
        return f"cannot read file ({exc.strerror or exc})"


def _write(run: _Import, pictures: list[_Picture], decoded: dict) -> None:
    """Save the batch's decodable pictures in one transaction; the report keeps the feed's order."""
    report = run.report
    saved = [p for p in pictures if not isinstance(decoded.get(p.sha256), str)]
    outcomes = iter(
        run.store.save_feed_products(
            [
                FeedProduct(
                    p.row.where, p.row.product_id, p.row.title, p.row.category,
                    p.url, p.path, p.sha256, p.file_size, decoded.get(p.sha256),
                )
                for p in saved
            ],
            run.labels, run.feed.product_ids, run.ids_changed,
        )
    )
    lists = {"added": report.added, "updated": report.updated, "unchanged": report.unchanged}
    for p in pictures:
        pixels = decoded.get(p.sha256)
        if isinstance(pixels, str):
            report.failed.append((p.row.where, pixels))
            continue
        outcome = next(outcomes)
        report.notes.extend(outcome.notes)
        if outcome.outcome == "failed":
            report.failed.append((p.row.where, outcome.reason))
        else:
            lists[outcome.outcome].append(outcome.item_id)
            if outcome.former_id:
                report.renamed.append((outcome.former_id, p.row.product_id))
