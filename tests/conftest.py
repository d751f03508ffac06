"""Shared fixtures: real SQLite catalogs in tmp folders, real images made with Pillow."""
from __future__ import annotations

import contextlib
import os
import socket
import sqlite3
import struct
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from protoshelf.core.store import ImportedFile, Store  # noqa: E402

DEMO = Path(__file__).resolve().parent.parent / "resources" / "demo"


@contextlib.contextmanager
def no_network():
    """Every socket connection refused: what ships in packages must load without one."""
    def refuse(*args, **kwargs):
        raise OSError("network access attempted")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", refuse)
        patch.setattr(socket, "create_connection", refuse)
        yield


@pytest.fixture
def store(tmp_path: Path):
    catalog = Store(tmp_path / "catalog.sqlite")
    yield catalog
    catalog.close()


def add_items(store: Store, count: int) -> list[int]:
    """Bare items /shop/0.png, /shop/1.png, … without image files, stored as an import stores
    them; returns their ids."""
    return seed_titles(store, [None] * count)


def seed_titles(store: Store, titles: list) -> list[int]:
    """Bare items with these titles (None for none), without image files; returns their ids."""
    files = [ImportedFile(f"/shop/{i}.png", f"{i:064x}", width=1, height=1, file_size=1) for i in range(len(titles))]
    saved = store.save_imported(files, {f.path: t for f, t in zip(files, titles) if t is not None})
    return [item_id for _, item_id, _ in saved]


@contextlib.contextmanager
def raw_sql(path: Path) -> Iterator[sqlite3.Connection]:
    """A plain sqlite3 connection to a catalog file, for what a test arranges or checks beneath the
    Store; foreign keys on, as on the Store's own connections; committed on leaving."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("PRAGMA foreign_keys = ON")
        with db:
            yield db


def wait_for(condition, seconds: float = 30.0) -> None:
    """Poll until `condition()` holds: for work other threads do; fails after `seconds`."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def png_chunk(kind: bytes, body: bytes) -> bytes:
    """One PNG chunk: length, type, body and CRC, for hand-made PNG files."""
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def write_image(path: Path, colour=(200, 30, 30), size=(64, 48), fmt: str | None = None, **save) -> Path:
    """A small real image file; random noise on top of `colour` so hashes differ per seed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(abs(hash((str(path), colour))) % 2**32)
    pixels = np.clip(np.array(colour) + rng.integers(-20, 20, (size[1], size[0], 3)), 0, 255)
    Image.fromarray(pixels.astype(np.uint8)).save(path, fmt, **save)
    return path


@pytest.fixture(scope="session")
def extractor():
    """The default backbone on the CPU (the process's shared one), with the network refused."""
    import torch

    from protoshelf.core.constants import DEFAULT_BACKBONE
    from protoshelf.core.embedding import pretrained_extractor

    with no_network():
        return pretrained_extractor(DEFAULT_BACKBONE, torch.device("cpu"))
