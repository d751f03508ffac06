"""What a failure means to the user: one sentence naming the problem and what to do about it.

The CLI prints it as one line (the traceback only with --debug) and the app shows it in a dialog,
so the same failure reads the same everywhere. Errors from SQLite arrive wrapped by SQLAlchemy;
they are recognised by the driver error they carry (`.orig`), so this module needs no SQLAlchemy.
"""
from __future__ import annotations

import errno
import sqlite3

DISK_FULL = "the disk is full (or a file size limit was reached): free some space and run it again; finished work is saved"
READ_ONLY = "the catalog cannot be written (the file or its folder is read-only): check its permissions or copy it somewhere writable"
BUSY = ("the catalog is busy: another ProtoShelf (or another program) is writing to it; "
        "try again when it has finished")


class UserError(ValueError):
    """A refusal whose message is already meant for the user."""


def _causes(exc: BaseException):
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        orig = getattr(exc, "orig", None)  # SQLAlchemy's DBAPIError wraps the driver's error
        if isinstance(orig, BaseException):
            yield orig
        exc = exc.__cause__ or exc.__context__


def _sqlite_message(exc: sqlite3.Error) -> str:
    text = str(exc)
    if "disk is full" in text or "disk I/O error" in text:
        return DISK_FULL
    if "readonly" in text or "read-only" in text:
        return READ_ONLY
    if "locked" in text or "busy" in text:
        return BUSY
    if "unable to open database file" in text:
        return "cannot open the catalog file: check that its folder exists and can be written"
    if "not a database" in text or "malformed" in text:
        return "the catalog file is damaged or not a catalog: restore it from a backup"
    return f"database error: {text}"


def _os_message(exc: OSError) -> str:
    where = f" ({exc.filename})" if exc.filename else ""
    if exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
        return DISK_FULL
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"permission denied{where}: check the file's and its folder's permissions"
    if exc.errno == errno.EROFS:
        return f"read-only file system{where}: choose a place that can be written"
    if exc.errno == errno.EISDIR:
        return f"a folder where a file was expected{where}"
    if exc.errno == errno.ENOENT:
        return f"no such file or folder{where}"
    return f"{exc.strerror or exc}{where}"


def user_message(exc: BaseException) -> str:
    """One line for any failure; unexpected ones say how to see the details."""
    known = known_message(exc)
    if known is not None:
        return known
    return f"{unexpected_message(exc)}; run again with --debug to see the details"


def unexpected_message(exc: BaseException) -> str:
    return f"unexpected error ({type(exc).__name__}: {exc})"


def known_message(exc: BaseException) -> str | None:
    """The sentence for a failure this module recognises (a refusal, a full disk, a busy catalog…);
    None for one it does not, whose details (a traceback) the user needs."""
    if isinstance(exc, ValueError):  # StoreError, ImageError, UserError and kin carry user text
        return " ".join(str(exc).split()) or type(exc).__name__
    for cause in _causes(exc):
        if isinstance(cause, MemoryError):
            return "out of memory: close other programs, or use a smaller batch (--batch-size) or catalog"
        if isinstance(cause, sqlite3.Error):
            return _sqlite_message(cause)
        if type(cause).__name__ == "SafetensorError" and any(
            word in str(cause) for word in ("No space", "StorageFull", "File too large", "FileTooLarge")
        ):
            return DISK_FULL
        if isinstance(cause, OSError) and cause.errno is not None:
            return _os_message(cause)
    if isinstance(exc, OSError) and str(exc):  # no errno to go by: its own words
        return " ".join(str(exc).split())
    return None
