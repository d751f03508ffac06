"""A memory-mapped copy of a model's embeddings beside the catalog, so a big catalog opens at once.

Reading 1M x 1280 vectors out of SQLite takes tens of seconds; mapping a .npy file of the same
matrix takes milliseconds, and its pages come from the OS page cache without a second copy in
the process. SQLite stays the source of truth: the copy is a cache, named after the model's state
token (migrations 0003 and 0004): triggers write a fresh random token in the same transaction as
every change to the model's vectors. A file whose name carries the current token was made from
exactly the rows the catalog holds now, even after a backup is restored (a counter would count up
again from the backup's value and name a copy of other vectors); any other file is stale and is
deleted when a new copy is written. Files are written to a temporary
name and renamed into place, so a crash leaves no half-written file under a valid name; anything
that cannot be read or written is simply a cache miss.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
from pathlib import Path

import numpy as np

MIN_ROWS = 20_000
"""Smaller matrices load from SQLite in well under a second; they get no file."""


def folder(catalog: Path) -> Path:
    return catalog.with_name(catalog.name + "-vectors")


def _stem(model: str) -> str:
    readable = re.sub(r"[^A-Za-z0-9_-]+", "_", model)[:60]
    return f"{readable}-{hashlib.sha256(model.encode()).hexdigest()[:8]}"


def _paths(catalog: Path, model: str, version: int) -> tuple[Path, Path]:
    base = f"{_stem(model)}-v{version}"
    return folder(catalog) / f"{base}.ids.npy", folder(catalog) / f"{base}.matrix.npy"


def read(catalog: Path, model: str, version: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(item_ids, read-only mapped matrix) of `version`, or None when there is no valid copy."""
    ids_path, matrix_path = _paths(catalog, model, version)
    try:
        ids = np.load(ids_path)
        matrix = np.load(matrix_path, mmap_mode="r")
    except (OSError, ValueError):
        return None
    if ids.ndim != 1 or matrix.ndim != 2 or len(matrix) != len(ids) or matrix.dtype != np.float32:
        return None
    return ids, np.asarray(matrix)


def write(catalog: Path, model: str, version: int, item_ids: np.ndarray, matrix: np.ndarray) -> bool:
    """Save a copy of `version` and delete the model's older copies; False when it could not."""
    ids_path, matrix_path = _paths(catalog, model, version)
    try:
        ids_path.parent.mkdir(exist_ok=True)
        for array, path in ((item_ids.astype(np.int64), ids_path), (matrix.astype(np.float32, copy=False), matrix_path)):
            _save_atomically(path, array)
    except OSError:
        return False
    for old in ids_path.parent.glob(f"{_stem(model)}-v*"):  # older versions, crashed writes
        if old not in (ids_path, matrix_path):
            with contextlib.suppress(OSError):  # Windows keeps a file another process maps
                old.unlink()
    return True


def _save_atomically(path: Path, array: np.ndarray) -> None:
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            np.save(out, array)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise

