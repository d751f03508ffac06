"""The memory-mapped vector cache: used only while it matches the catalog, rebuilt when it does not."""
from __future__ import annotations

import shutil
import sqlite3

import numpy as np
import pytest

from conftest import add_items as bare_items, raw_sql
from protoshelf.core import vector_cache
from protoshelf.core.migrations import upgrade
from protoshelf.core.store import Store, make_engine

ROWS, DIM = 40, 6


@pytest.fixture(autouse=True)
def small_catalogs_get_a_cache(monkeypatch):
    monkeypatch.setattr(vector_cache, "MIN_ROWS", 10)


def add_items(store: Store, count: int = ROWS) -> np.ndarray:
    return np.asarray(bare_items(store, count), np.int64)


def cache_files(store: Store) -> list[str]:
    folder = vector_cache.folder(store.path)
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_second_load_maps_the_cache_and_equals_sqlite(store):
    ids = add_items(store)
    vectors = np.random.default_rng(0).normal(size=(ROWS, DIM)).astype(np.float32)
    store.save_embeddings("m", ids, vectors)
    first = store.load_embeddings("m")
    assert first.matrix.flags.owndata and len(cache_files(store)) == 2
    second = store.load_embeddings("m")
    assert not second.matrix.flags.owndata  # the mapped file, not a copy
    np.testing.assert_array_equal(second.matrix, vectors)
    assert second.item_ids.tolist() == ids.tolist()


def test_every_change_to_the_vectors_retires_the_cache(store):
    ids = add_items(store)
    store.save_embeddings("m", ids, np.ones((ROWS, DIM), np.float32))
    store.load_embeddings("m")
    before = cache_files(store)

    store.save_embeddings("m", ids[:1], np.zeros((1, DIM), np.float32))  # INSERT OR REPLACE
    assert store.load_embeddings("m").matrix[0].tolist() == [0.0] * DIM
    with raw_sql(store.path) as db:  # a deleted item takes its vector with it (ON DELETE CASCADE)
        db.execute("DELETE FROM items WHERE id = ?", (int(ids[-1]),))
    after = store.load_embeddings("m")
    assert after.item_ids.tolist() == ids[:-1].tolist()
    assert len(cache_files(store)) == 2 and not set(cache_files(store)) & set(before)


def test_other_models_keep_their_own_cache(store):
    ids = add_items(store)
    store.save_embeddings("a", ids, np.ones((ROWS, DIM), np.float32))
    store.save_embeddings("b", ids, np.full((ROWS, 3), 2, np.float32))
    store.load_embeddings("a"), store.load_embeddings("b")
    store.save_embeddings("b", ids[:1], np.zeros((1, 3), np.float32))
    assert not store.load_embeddings("a").matrix.flags.owndata  # still a hit
    assert store.load_embeddings("b").matrix[0].tolist() == [0, 0, 0]


def test_a_damaged_cache_file_is_a_miss_not_an_error(store):
    ids = add_items(store)
    vectors = np.arange(ROWS * DIM, dtype=np.float32).reshape(ROWS, DIM)
    store.save_embeddings("m", ids, vectors)
    store.load_embeddings("m")
    matrix_file = next(p for p in vector_cache.folder(store.path).iterdir() if p.name.endswith(".matrix.npy"))
    matrix_file.write_bytes(matrix_file.read_bytes()[:200])
    np.testing.assert_array_equal(store.load_embeddings("m").matrix, vectors)


def test_another_catalog_copied_over_this_one_never_uses_its_cache(tmp_path):
    paths = [tmp_path / "a" / "catalog.sqlite", tmp_path / "b" / "catalog.sqlite"]
    for value, path in enumerate(paths):  # same rows, same history, different vectors
        with Store(path) as store:
            store.save_embeddings("m", add_items(store), np.full((ROWS, DIM), value, np.float32))
            store.load_embeddings("m")
    shutil.copy(paths[1], paths[0])
    with Store(paths[0]) as store:
        assert store.load_embeddings("m").matrix.max() == 1.0


def test_a_failed_write_leaves_no_file_under_a_valid_name(store, monkeypatch):
    ids = add_items(store)
    store.save_embeddings("m", ids, np.ones((ROWS, DIM), np.float32))

    def disk_full(*_args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(vector_cache.os, "replace", disk_full)
    assert store.load_embeddings("m").matrix.shape == (ROWS, DIM)
    assert cache_files(store) == []  # temporary files removed too
    assert store.load_embeddings("m").matrix.flags.owndata  # and the next load reads SQLite


def test_catalogs_from_before_the_cache_get_a_version_on_upgrade(tmp_path):
    path = tmp_path / "old.sqlite"
    engine = make_engine(path)
    upgrade(engine, "0002")
    engine.dispose()
    with sqlite3.connect(path) as conn:
        conn.executemany(
            "INSERT INTO items (id, path, sha256, width, height, file_size, added_at) VALUES (?, ?, ?, 1, 1, 1, '2024-01-01')",
            [(i, f"/{i}", f"{i:064x}") for i in range(1, ROWS + 1)],
        )
        conn.executemany(
            "INSERT INTO embeddings (model, item_id, vector) VALUES ('text:m', ?, ?)  -- text vectors outlive 0008",
            [(i, np.full(DIM, i, "<f4").tobytes()) for i in range(1, ROWS + 1)],
        )
    with Store(path) as store:
        assert store.load_embeddings("text:m").matrix.flags.owndata
        cached = store.load_embeddings("text:m")
        assert not cached.matrix.flags.owndata and cached.matrix[:, 0].tolist() == list(range(1, ROWS + 1))
