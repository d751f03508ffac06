"""Large fake catalogs for the app's benchmarks and tests, written straight into SQLite.

Going through the importer would decode images and embed them; a scale test only needs rows, a
shared thumbnail and vectors, so they are inserted with `executemany` in one transaction each.
Vectors are drawn around one centre per category so prototypes find real structure.
"""
from __future__ import annotations

import io
import sqlite3
from pathlib import Path

import numpy as np
from PIL import Image

from protoshelf.core.constants import DEFAULT_BACKBONE
from protoshelf.core.store import Store, vector_to_bytes


def tiny_jpeg(colour=(90, 140, 200), side: int = 96) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (side, side), colour).save(out, "JPEG", quality=80)
    return out.getvalue()


def make_fake_catalog(
    path: str | Path,
    items: int,
    dim: int = 1280,
    categories: int = 5,
    thumbnails: bool = True,
    model: str = DEFAULT_BACKBONE,
    seed: int = 0,
    noise: float = 1.5,
) -> np.ndarray:
    """Create (or extend) a catalog with `items` rows and embeddings; returns each item's true class."""
    Store(path).close()  # creates the schema
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, categories, items)
    centres = rng.normal(size=(categories, dim)).astype(np.float32)
    thumb = tiny_jpeg() if thumbnails else None
    conn = sqlite3.connect(path)
    try:
        start = conn.execute("SELECT COALESCE(MAX(id), 0) FROM items").fetchone()[0] + 1
        ids = range(start, start + items)
        with conn:
            conn.executemany(
                "INSERT INTO items (id, path, sha256, title, width, height, file_size, thumbnail, added_at)"
                " VALUES (?, ?, ?, ?, 96, 96, 1000, ?, '2024-01-01 00:00:00')",
                (
                    (i, f"/fake/item{i:06d}.png", f"{i:064x}", f"Product {i} of kind {truth[i - start]}", thumb)
                    for i in ids
                ),
            )
            for begin in range(0, items, 20_000):
                block = slice(begin, min(items, begin + 20_000))
                vectors = centres[truth[block]] + rng.normal(scale=noise, size=(block.stop - block.start, dim)).astype(np.float32)
                conn.executemany(
                    "INSERT INTO embeddings (model, item_id, vector) VALUES (?, ?, ?)",
                    ((model, start + begin + r, vector_to_bytes(v)) for r, v in enumerate(vectors)),
                )
    finally:
        conn.close()
    return truth
