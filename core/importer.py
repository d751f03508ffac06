"""Import image files and folders into a catalog.

Files are hashed, and only content the catalog lacks is decoded, in a small thread pool (hashlib
and Pillow release the GIL) and written in batches, one transaction each, so a killed import keeps
every finished batch and a rerun skips them by content hash without decoding them again. Bad files
never stop an import: each one is reported with its reason.
"""
from __future__ import annotations

import csv
import os
import unicodedata
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

from sqlalchemy import select

from core.images import IMAGE_SUFFIXES, ImageError, check_file_size, file_sha256, open_image, thumbnail_bytes
from core.progress import Progress, no_progress
from core.schema import Category, Item, Label
from core.store import Store

BATCH_SIZE = 256


@dataclass
class ImportReport:
    added: list[int] = field(default_factory=list)
    existing: list[int] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    ids_by_path: dict[str, int] = field(default_factory=dict)

    @property
    def item_ids(self) -> list[int]:
        """Every imported or already present item, in input order."""
        return self.existing + self.added

    def summary(self) -> str:
        return (
            f"{len(self.added)} added, {len(self.existing)} already in the catalog, "
            f"{len(self.skipped)} skipped"
        )


@dataclass(frozen=True)
class _Decoded:
    path: str
    sha256: str = ""
    width: int = 0
    height: int = 0
    file_size: int = 0
    thumbnail: bytes = b""
    error: str = ""


def display_path(path: str | Path) -> str:
    """A path as text that can be shown and stored: undecodable bytes of a non-UTF-8 name are
    spelled out as \\xNN instead of surviving as lone surrogates that SQLite and Qt refuse."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def find_images(sources: Iterable[str | Path], unreadable: list[tuple[str, str]] | None = None) -> Iterator[Path]:
    """Image files under the sources; folders are walked recursively without following links.

    Folders that cannot be listed are appended to `unreadable` as (path, reason).
    """

    def note(error: OSError) -> None:
        if unreadable is not None:
            reason = (error.strerror or str(error)).lower()
            unreadable.append((display_path(error.filename), f"cannot open folder ({reason})"))

    for source in sources:
        path = Path(source).expanduser()
        if path.is_dir():
            for root, dirs, files in os.walk(path, onerror=note, followlinks=False):
                dirs.sort()
                for name in sorted(files):
                    if Path(name).suffix.lower() in IMAGE_SUFFIXES:
                        yield Path(root) / name
        else:
            yield path


def _examine(path: Path) -> _Decoded:
    """The cheap checks, then the content hash; no pixel is decoded here."""
    shown = display_path(path)
    try:
        resolved = path.resolve(strict=True)
        if not resolved.is_file():
            return _Decoded(shown, error="not a file")
        if display_path(resolved) != str(resolved):
            return _Decoded(shown, error="file name is not valid UTF-8; rename the file to import it")
        size = resolved.stat().st_size
        check_file_size(size)  # before hashing: a giant file is refused unread
        return _Decoded(str(resolved), file_sha256(resolved), file_size=size)
    except ImageError as exc:
        return _Decoded(shown, error=str(exc))
    except RuntimeError as exc:  # symlink loops surface as RuntimeError on some Pythons
        return _Decoded(shown, error=f"cannot resolve path ({exc})")
    except PermissionError:
        return _Decoded(shown, error="permission denied")
    except FileNotFoundError:
        return _Decoded(shown, error="file not found")
    except OSError as exc:
        return _Decoded(shown, error=f"cannot read file ({exc.strerror or exc})")


def _decode(examined: _Decoded) -> _Decoded:
    """The expensive part: pixels and thumbnail of a hashed file whose content is new."""
    try:
        image = open_image(Path(examined.path), min_side=256)
        return replace(examined, width=image.width, height=image.height, thumbnail=thumbnail_bytes(image))
    except ImageError as exc:
        return replace(examined, error=str(exc))
    except OSError as exc:
        return replace(examined, error=f"cannot read file ({exc.strerror or exc})")


def import_images(
    store: Store,
    sources: Iterable[str | Path],
    titles: dict[str, str] | None = None,
    progress: Progress = no_progress,
    workers: int = 4,
) -> ImportReport:
    """Import image files; `titles` maps resolved paths to product titles.

    Each file is hashed before it is decoded: hashing is a fast read, decoding is the slow part,
    so a rescan of a folder already in the catalog decodes nothing, and copies are decoded once.
    """
    report = ImportReport()
    paths = list(find_images(sources, report.skipped))
    titles = titles or {}
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for start in range(0, len(paths), BATCH_SIZE):
            progress(start, len(paths))
            batch = paths[start : start + BATCH_SIZE]
            examined = list(pool.map(_examine, batch))
            hashes = [e.sha256 for e in examined if not e.error]
            with store.read() as s:
                known = set(s.scalars(select(Item.sha256).where(Item.sha256.in_(hashes))))
            new = {e.sha256: e for e in examined if not e.error and e.sha256 not in known}  # first copy of each
            decoded = dict(zip(new, pool.map(_decode, new.values())))
            _write_batch(store, [_outcome(p, e, decoded) for p, e in zip(batch, examined)], titles, report)
    progress(len(paths), len(paths))
    return report


def _outcome(path: Path, examined: _Decoded, decoded: dict[str, _Decoded]) -> _Decoded:
    """A file's result: its own refusal, its content's decode (copies share it) or, for content
    already in the catalog, the hash alone."""
    if examined.error or examined.sha256 not in decoded:
        return examined
    result = decoded[examined.sha256]
    if result.error:
        return _Decoded(display_path(path), error=result.error)
    return replace(result, path=examined.path)


def _write_batch(store: Store, batch: list[_Decoded], titles: dict[str, str], report: ImportReport) -> None:
    good = [d for d in batch if not d.error]
    report.skipped.extend((d.path, d.error) for d in batch if d.error)
    with store.write() as s:
        known = dict(
            s.execute(select(Item.sha256, Item.id).where(Item.sha256.in_([d.sha256 for d in good]))).all()
        )
        for d in good:
            if d.sha256 in known:
                report.existing.append(known[d.sha256])
                report.ids_by_path[d.path] = known[d.sha256]
                continue
            item = Item(
                path=d.path, sha256=d.sha256, title=titles.get(d.path), width=d.width,
                height=d.height, file_size=d.file_size, thumbnail=d.thumbnail,
            )
            s.add(item)
            s.flush()
            known[d.sha256] = item.id
            report.added.append(item.id)
            report.ids_by_path[d.path] = item.id


@dataclass
class TitlesFile:
    """A `path,title[,category]` CSV; paths are relative to the CSV's folder unless absolute."""

    titles: dict[str, str]
    categories: dict[str, str]
    problems: list[str]


def read_titles_csv(csv_path: str | Path) -> TitlesFile:
    csv_path = Path(csv_path).expanduser()
    titles: dict[str, str] = {}
    categories: dict[str, str] = {}
    problems: list[str] = []
    with open(csv_path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        try:
            if not reader.fieldnames or "path" not in reader.fieldnames:
                raise ValueError(f"{csv_path}: the first row must name the columns path,title[,category]")
            for line, row in enumerate(reader, start=2):
                raw = (row.get("path") or "").strip()
                if not raw:
                    problems.append(f"{csv_path}:{line}: empty path")
                    continue
                key = str((csv_path.parent / raw).resolve())
                if title := (row.get("title") or "").strip():
                    titles[key] = title
                if category := (row.get("category") or "").strip():
                    categories[key] = unicodedata.normalize("NFC", category)
        except UnicodeDecodeError as exc:
            raise ValueError(f"{csv_path} is not UTF-8 text: save it as \"CSV UTF-8\" and try again") from exc
        except csv.Error as exc:  # e.g. a cell over the csv module's 128 KiB limit
            raise ValueError(f"{csv_path}, near line {reader.line_num + 1}: {exc}") from exc
    return TitlesFile(titles, categories, problems)


def apply_titles_file(store: Store, titles_file: TitlesFile) -> tuple[int, list[str]]:
    """Set titles and labels on items already imported; labels only name existing categories."""
    updated = 0
    problems = list(titles_file.problems)
    with store.write() as s:
        by_path = {
            p: i
            for i, p in s.execute(
                select(Item.id, Item.path).where(
                    Item.path.in_(list(titles_file.titles) + list(titles_file.categories))
                )
            )
        }
        category_ids = dict(s.execute(select(Category.name, Category.id)).all())
        for path, title in titles_file.titles.items():
            if path in by_path:
                s.get(Item, by_path[path]).title = title
                updated += 1
        for path, name in titles_file.categories.items():
            if name not in category_ids:
                problems.append(f"{path}: category {name!r} does not exist; label skipped")
            elif path in by_path:
                s.merge(Label(item_id=by_path[path], category_id=category_ids[name]))
    return updated, problems


def import_with_titles(
    store: Store,
    sources: Iterable[str | Path],
    titles_csv: str | Path | None = None,
    progress: Progress = no_progress,
) -> tuple[ImportReport, list[str]]:
    """The CLI's and the app's import: images, then titles and labels from an optional CSV."""
    titles_file = read_titles_csv(titles_csv) if titles_csv else TitlesFile({}, {}, [])
    report = import_images(store, sources, titles_file.titles, progress)
    _, problems = apply_titles_file(store, titles_file)
    return report, problems

