"""The catalog store on a real SQLite file."""
from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from conftest import add_items
from protoshelf.core.store import MAX_NAME_LENGTH, Store, StoreError, make_engine


def test_pragmas_and_schema_version_are_set(store):
    from protoshelf.core.migrations import head_revision

    engine = make_engine(store.path)  # where the Store's connections come from
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == head_revision()
    engine.dispose()


def test_reopening_keeps_everything(tmp_path):
    path = tmp_path / "c.sqlite"
    with Store(path) as store:
        ids = add_items(store, 3)
        cat = store.create_category("Shoes")
        store.set_labels(ids[:2], cat)
        store.save_embeddings("m", ids, np.arange(3 * 4, dtype=np.float32).reshape(3, 4))
    with Store(path) as store:
        assert store.labels() == {ids[0]: cat, ids[1]: cat}
        vectors = store.load_embeddings("m")
        assert vectors.item_ids.tolist() == ids
        np.testing.assert_array_equal(vectors.matrix, np.arange(12, dtype=np.float32).reshape(3, 4))
        assert store.items_without_embedding("m") == []
        assert len(store.items_without_embedding("other")) == 3


def test_vectors_are_little_endian_float32(store):
    (item,) = add_items(store, 1)
    store.save_embeddings("m", [item], np.array([[1.5, -2.0]], np.float64))
    raw = sqlite3.connect(store.path).execute("SELECT vector FROM embeddings").fetchone()[0]
    assert raw == np.array([1.5, -2.0], "<f4").tobytes()


def test_category_names_are_unique_and_validated(store):
    store.create_category("  Kitchen  ")
    assert [c.name for c in store.categories()] == ["Kitchen"]
    with pytest.raises(StoreError, match="already exists"):
        store.create_category("Kitchen")
    for bad in ["", "   ", "a\nb", "tab\there", "x" * (MAX_NAME_LENGTH + 1)]:
        with pytest.raises(StoreError):
            store.create_category(bad)


def test_labels_round_trip_and_undo(store):
    ids = add_items(store, 4)
    a, b = store.create_category("A"), store.create_category("B")
    store.set_labels(ids[:2], a)
    previous = store.set_labels(ids[1:3], b)
    assert previous == {ids[1]: a, ids[2]: None}
    assert store.labels() == {ids[0]: a, ids[1]: b, ids[2]: b}
    assert store.labels([ids[1], ids[3], ids[1]]) == {ids[1]: b}  # only those asked for; unlabelled left out
    assert store.undo_labels(previous, b) == {}
    assert store.labels() == {ids[0]: a, ids[1]: a}


def test_undoing_labels_leaves_the_items_relabelled_since(store):
    ids = add_items(store, 5)
    a, b, c = (store.create_category(name) for name in "ABC")
    store.set_labels(ids[:2], a)
    before = store.set_labels(ids[:4], b)
    store.set_labels([ids[1]], c)  # later labels, given by the user or another process
    store.set_labels([ids[2]], None)
    assert store.undo_labels(before, b) == {ids[1]: c, ids[2]: None}
    assert store.labels() == {ids[0]: a, ids[1]: c}
    before = store.set_labels(ids[3:], None)  # an unlabel is undone the same way
    store.set_labels([ids[4]], a)
    assert store.undo_labels(before, None) == {ids[4]: a}
    assert store.labels() == {ids[0]: a, ids[1]: c, ids[4]: a}


def test_undoing_labels_leaves_the_items_asked_to_be_left_even_with_the_same_label(store):
    """The user gave a dropped file its import's category again after the import wrote it."""
    ids = add_items(store, 3)
    a, b = store.create_category("A"), store.create_category("B")
    store.set_labels(ids, a)
    before = store.set_labels(ids, b)
    store.set_labels([ids[0]], b)
    assert store.undo_labels(before, b, leave=[ids[0]]) == {ids[0]: b}
    assert store.labels() == {ids[0]: b, ids[1]: a, ids[2]: a}


def test_deleting_a_category_removes_its_labels_and_can_be_undone(store):
    ids = add_items(store, 3)
    a = store.create_category("A", colour="#123456")
    store.set_labels(ids, a)
    removed = store.delete_category(a)
    assert store.labels() == {} and store.categories() == []
    assert store.restore_category(a, "A", "#123456", removed) == {}
    assert store.labels() == dict.fromkeys(ids, a)
    assert store.categories()[0].examples == 3
    removed = store.delete_category(a)
    b = store.create_category("B")
    store.set_labels(ids[:1], b)  # labelled since by another process: it keeps B
    assert store.restore_category(a, "A", "#123456", removed) == {ids[0]: b}
    assert store.labels() == {ids[0]: b, ids[1]: a, ids[2]: a}


def test_predictions_replace_the_previous_run_and_count_per_category(store):
    ids = add_items(store, 4)
    a, b = store.create_category("A"), store.create_category("B")
    store.set_labels([ids[0]], a)
    store.save_predictions("prototypes", "m", {}, ids, [a, a, b, None], [0.9] * 4, [[(a, 0.9)]] * 4)
    rows = {c.name: c for c in store.categories()}
    assert (rows["A"].examples, rows["A"].predicted, rows["B"].predicted) == (1, 1, 1)
    store.save_predictions("prototypes", "m", {}, ids[:1], [b], [0.7], [[(b, 0.7)]])
    assert set(store.predictions()) == {ids[0]}


def test_predictions_made_before_a_category_was_deleted_save_without_it(store):
    """The window saves its last predictions as it closes, perhaps just after a delete: the save
    failed on the foreign key, and the predictions were lost."""
    ids = add_items(store, 2)
    a, b = store.create_category("A"), store.create_category("B")
    store.delete_category(b)
    store.save_predictions("prototypes", "m", {}, ids, [a, b], [0.9, 0.8], [[(a, 0.9), (b, 0.1)], [(b, 0.8), (a, 0.2)]])
    saved = store.predictions()
    assert (saved[ids[0]].category_id, saved[ids[1]].category_id) == (a, None)
    assert saved[ids[1]].ranking == [[a, 0.2]]


def test_a_save_stopped_between_blocks_leaves_the_previous_predictions(store, monkeypatch):
    import protoshelf.core.store
    from protoshelf.core.progress import Cancelled

    monkeypatch.setattr(protoshelf.core.store, "BULK_ROWS", 3)
    ids = add_items(store, 10)
    a, b = store.create_category("A"), store.create_category("B")
    store.save_predictions("prototypes", "m", {}, ids, [a] * 10, [0.9] * 10, [[(a, 0.9), (b, 0.1)]] * 10)
    seen = []

    def stop_after_two_blocks(done, total):
        seen.append(done)
        if done >= 6:
            raise Cancelled

    with pytest.raises(Cancelled):
        store.save_predictions("prototypes", "m", {}, ids, [b] * 10, [0.8] * 10, iter([[(b, 0.8)]] * 10),
                               progress=stop_after_two_blocks)
    assert seen == [0, 3, 6]
    kept = store.predictions()
    assert len(kept) == 10 and {p.category_id for p in kept.values()} == {a}
    assert kept[ids[0]].ranking == [[a, 0.9], [b, 0.1]]


def test_large_in_lists_are_chunked(store):
    ids = add_items(store, 2500)
    cat = store.create_category("Many")
    store.set_labels(ids, cat)
    assert len(store.labels()) == 2500
    assert len(store.items(ids)) == 2500


def test_search_texts_are_titles_or_file_names_of_exactly_the_ids_asked(store):
    ids = add_items(store, 6)
    store.set_title(ids[1], "Red kettle")
    store.set_title(ids[2], "")
    asked = [ids[4], ids[1], ids[2], ids[0], 10_000]  # unsorted, a gap (ids[3]) and an unknown id
    assert store.search_texts(asked) == {ids[0]: "0.png", ids[1]: "Red kettle", ids[2]: "2.png", ids[4]: "4.png"}
    assert store.search_texts([]) == {}
