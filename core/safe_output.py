"""Writing a file the user named without ever destroying something that is not ours to replace.

Every output ProtoShelf writes (the CSV export, the duplicates CSV) goes through `replace_safely`:
the text is written to a temporary file beside the target and renamed over it only when complete,
so a crash or Ctrl-C leaves the old file whole. Before anything is written the target is checked,
because a mistyped or swapped argument (`export shop.sqlite --db shop.sqlite`) must not turn a
catalog into a CSV: only a plain file may be replaced, never an SQLite database (recognised by its
header bytes, whatever its name), the journal files beside any database, nor the open catalog's
own files. A symlink is written through to the file it points at, and a replaced file keeps its
permissions, as `cp` would do.
"""
from __future__ import annotations

import os
import signal
import stat
import tempfile
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

from protoshelf.core.errors import UserError

SQLITE_HEADER = b"SQLite format 3\x00"
CATALOG_COMPANIONS = ("", "-wal", "-shm", "-journal")


class OutputRefused(UserError):
    """The target may not be replaced; the message says why and what to do."""


def check_target(target: Path, protected: Iterable[Path] = ()) -> int | None:
    """Raise OutputRefused unless `target` (a symlink already resolved) may be replaced; returns
    the mode to give the new file (the old file's, or None for a new file)."""
    try:
        info = target.stat()
    except FileNotFoundError:
        if not target.parent.is_dir():
            raise OutputRefused(f"{target.parent} is not a folder that exists; create it first") from None
        return None
    if not stat.S_ISREG(info.st_mode):
        raise OutputRefused(f"{target} is not a regular file (a folder, device or pipe); choose a file name")
    for catalog in protected:
        for suffix in CATALOG_COMPANIONS:
            companion = Path(f"{catalog}{suffix}")
            if companion.exists() and os.path.samefile(companion, target):
                raise OutputRefused(f"{target} is the open catalog; choose another file name for the output")
    if _is_sqlite_database(target):
        raise OutputRefused(f"{target} is an SQLite database (perhaps a catalog) and is never overwritten; "
                            "choose another file name")
    if _is_sqlite_companion(target):
        raise OutputRefused(f"{target} belongs to the SQLite database beside it (a journal or its shared "
                            "memory) and is never overwritten; choose another file name")
    if not os.access(target, os.W_OK):
        raise OutputRefused(f"{target} is read-only; choose another file name or change its permissions")
    return stat.S_IMODE(info.st_mode)


def _is_sqlite_companion(target: Path) -> bool:
    """A `-wal`, `-shm` or `-journal` file beside an SQLite database: they start with no SQLite
    header, but a write-ahead log may hold the only copy of committed changes."""
    for suffix in CATALOG_COMPANIONS[1:]:
        if target.name.endswith(suffix):
            try:
                return _is_sqlite_database(target.with_name(target.name[: -len(suffix)]))
            except OSError:
                return False
    return False


def _is_sqlite_database(path: Path) -> bool:
    """By its header bytes, whatever its name."""
    with open(path, "rb") as handle:
        return handle.read(len(SQLITE_HEADER)) == SQLITE_HEADER


@contextmanager
def replace_safely(
    target: str | Path, protected: Iterable[Path] = (), encoding: str = "utf-8"
) -> Iterator[TextIO]:
    """A text handle whose content replaces `target` atomically once the block ends without error."""
    target = Path(os.path.realpath(Path(target).expanduser()))  # write through a symlink
    mode = check_target(target, list(protected))
    if mode is None:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with _terminate_as_interrupt(), os.fdopen(fd, "w", newline="", encoding=encoding) as handle:
            yield handle
            handle.flush()
            if hasattr(os, "fchmod"):  # POSIX; Windows has no mode bits to keep
                os.fchmod(handle.fileno(), mode)
            os.fsync(handle.fileno())
            os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


@contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """SIGTERM ends the process without unwinding, which would leave the temporary file behind;
    while a file is written from the main thread it raises KeyboardInterrupt instead, as Ctrl-C does."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(_signum, _frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
