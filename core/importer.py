"""Import image files and folders into a catalog.

Files are hashed, and only content the catalog lacks is decoded, in a small thread pool (hashlib
and Pillow release the GIL) and written in batches, one transaction each, so a killed import keeps
every finished batch and a rerun skips them by content hash without decoding them again. Bad files
never stop an import: each one is reported with its reason. Content already in the catalog under
a path that no longer exists is re-pointed to where it is now (a moved folder), and new content at
a path an item holds updates that item (a file changed in place).
"""
from __future__ import annotations

import csv
import io
import os
import stat
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

from protoshelf.core.errors import UserError
from protoshelf.core.images import (
    IMAGE_SUFFIXES, UNREAD_PICTURE_SUFFIXES, ImageError, check_file_size, file_sha256, open_image, thumbnail_bytes,
)
from protoshelf.core.progress import Progress, no_progress
from protoshelf.core.store import ImportedFile, Relocation, Store

BATCH_SIZE = 256
MAX_TITLES_BYTES = 1 << 30
"""A titles CSV is read whole into memory; a million rows of long titles stay far below this."""
MAX_TITLES_LINE = 1 << 20


@dataclass
class ImportReport:
    added: list[int] = field(default_factory=list)
    existing: list[int] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    ids_by_path: dict[str, int] = field(default_factory=dict)
    moved: list[int] = field(default_factory=list)
    """Among `existing`: items whose file had gone from its recorded path, now pointing here."""
    changed: list[int] = field(default_factory=list)
    """Items whose file changed in place: new hash and thumbnail, image vectors to redo."""
    left_out: Counter[str] = field(default_factory=Counter)
    """Pictures in the folders in formats that are not read, by extension (`UNREAD_PICTURE_SUFFIXES`):
    a folder of iPhone .heic photos must not look like an empty folder."""

    @property
    def item_ids(self) -> list[int]:
        """Every imported or already present item."""
        return self.existing + self.changed + self.added

    def summary(self) -> str:
        extra = "".join(
            f", {len(ids)} {what}" for ids, what in
            ((self.moved, "found at a new place"), (self.changed, "changed since imported, updated")) if ids
        )
        if self.left_out:
            kinds = ", ".join(f"{suffix} {count}" for suffix, count in self.left_out.most_common())
            extra += (f", {self.left_out.total()} left out as formats ProtoShelf does not read "
                      f"({kinds}: convert them to JPEG or PNG)")
        return (
            f"{len(self.added)} added, {len(self.existing)} already in the catalog, "
            f"{len(self.skipped)} skipped{extra}"
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


def find_images(sources: Iterable[str | Path], unreadable: list[tuple[str, str]] | None = None,
                left_out: Counter[str] | None = None) -> Iterator[Path]:
    """Image files under the sources; folders are walked recursively without following links.

    Folders that cannot be listed are appended to `unreadable` as (path, reason); pictures in
    folders in a format that is not read are counted in `left_out` by extension.
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
                    suffix = Path(name).suffix.lower()
                    if suffix in IMAGE_SUFFIXES:
                        yield Path(root) / name
                    elif left_out is not None and suffix in UNREAD_PICTURE_SUFFIXES:
                        left_out[suffix] += 1
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
    report: ImportReport | None = None,
) -> ImportReport:
    """Import image files; `titles` maps resolved paths to product titles.

    Each file is hashed before it is decoded: hashing is a fast read, decoding is the slow part,
    so a rescan of a folder already in the catalog decodes nothing, and copies are decoded once.
    `report`, when given, is filled batch by batch: a caller whose import is cancelled part way
    still knows what came in.
    """
    report = ImportReport() if report is None else report
    paths = list(find_images(sources, report.skipped, report.left_out))
    titles = titles or {}
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for start in range(0, len(paths), BATCH_SIZE):
            progress(start, len(paths))
            batch = paths[start : start + BATCH_SIZE]
            examined = list(pool.map(_examine, batch))
            known = store.known_hashes([e.sha256 for e in examined if not e.error])
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
    report.skipped.extend((d.path, d.error) for d in batch if d.error)
    files = [ImportedFile(d.path, d.sha256, d.width, d.height, d.file_size, d.thumbnail) for d in batch if not d.error]
    lists = {"added": report.added, "existing": report.existing, "moved": report.existing, "changed": report.changed}
    for path, item_id, outcome in store.save_imported(files, titles):
        lists[outcome].append(item_id)
        if outcome == "moved":
            report.moved.append(item_id)
        report.ids_by_path[path] = item_id


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
    with _open_bounded(csv_path) as handle:
        reader = csv.DictReader(_bounded_lines(handle, csv_path))
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


def _open_bounded(path: Path) -> io.TextIOWrapper:
    """A text file the user named, refused unless it is a regular file of a sane size: a FIFO or
    /dev/zero would otherwise hang the import or fill the memory."""
    handle = open(path, "rb", buffering=0, opener=lambda p, flags: os.open(p, flags | getattr(os, "O_NONBLOCK", 0)))
    try:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise UserError(f"{path} is not a regular file (a folder, device or pipe); give a CSV file")
        if info.st_size > MAX_TITLES_BYTES:
            raise UserError(f"{path} is larger than {MAX_TITLES_BYTES >> 20} MB; split it into smaller CSV files")
        return io.TextIOWrapper(io.BufferedReader(handle), encoding="utf-8-sig", newline="")
    except BaseException:
        handle.close()
        raise


def _bounded_lines(handle: io.TextIOWrapper, path: Path) -> Iterator[str]:
    """The file's lines, none longer than MAX_TITLES_LINE characters, MAX_TITLES_BYTES in all
    (a file can grow after its size was checked)."""
    total = 0
    while line := handle.readline(MAX_TITLES_LINE + 1):
        total += len(line)
        if len(line) > MAX_TITLES_LINE or total > MAX_TITLES_BYTES:
            raise UserError(f"{path} has a line longer than {MAX_TITLES_LINE >> 20} MB or is too large: "
                            "is it really a titles CSV?")
        yield line


def apply_titles_file(store: Store, titles_file: TitlesFile) -> tuple[int, list[str]]:
    """Set titles and labels on items already imported; labels only name existing categories."""
    updated, problems = store.apply_titles(titles_file.titles, titles_file.categories)
    return updated, titles_file.problems + problems


def relocate(store: Store, old_prefix: str | Path, new_prefix: str | Path) -> Relocation:
    """Re-point items after their folder moved: `old_prefix` as recorded (it need not exist any more),
    `new_prefix` where the files are now."""
    new = Path(new_prefix).expanduser()
    if not new.is_dir():
        raise UserError(f"{new} is not a folder; give the folder the images are in now")
    return store.relocate(os.path.abspath(Path(old_prefix).expanduser()), str(new.resolve()))


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

