"""Migration 0007 rebuilds the items table without UNIQUE (sha256): a real catalog made at 0006 keeps
every row, label, vector and trigger, and then holds two products with one picture."""
from __future__ import annotations

import hashlib
import sqlite3

import numpy as np
import pytest
from alembic import command

from protoshelf.core.feed_import import import_feed
from protoshelf.core.migrations import alembic_config, upgrade
from protoshelf.core.store import Store, make_engine
from tests.conftest import raw_sql, write_image
from tests.test_feed_import import by_product, downloader, write_feed  # noqa: F401 - a fixture

TABLES = ("items", "labels", "embeddings", "predictions", "model_runs", "categories")


def catalog_at_0006(path, picture) -> None:
    """Three items as the 0006 schema held them: two products (one of them `picture`) and a folder's
    item; labels, image and title vectors, predictions."""
    engine = make_engine(path)
    upgrade(engine, "0006")
    engine.dispose()
    with sqlite3.connect(path) as raw:
        raw.execute("INSERT INTO categories (id, name, colour, created_at, position) VALUES (1, 'Mugs', '#000000', '2024', 1)")
        raw.execute("INSERT INTO model_runs (id, method, backbone, params, created_at) VALUES (1, 'p', 'm', '{}', '2024')")
        sha = hashlib.sha256(picture.read_bytes()).hexdigest()
        rows = [(1, str(picture), sha, "Red mug", "A", "http://shop/a.png"),
                (2, "/shop/b.png", "b" * 64, "Blue mug", "B", None),
                (3, "/photos/c.png", "c" * 64, None, None, None)]
        raw.executemany("INSERT INTO items (id, path, sha256, title, width, height, file_size, thumbnail, added_at,"
                        " product_id, image_url) VALUES (?, ?, ?, ?, 32, 24, 100, x'89504e47', '2024-01-01', ?, ?)", rows)
        for item_id in (1, 2, 3):
            raw.execute("INSERT INTO embeddings VALUES ('img', ?, ?)", (item_id, np.full(3, item_id, "<f4").tobytes()))
            raw.execute("INSERT INTO embeddings VALUES ('text:t', ?, x'0000803f')", (item_id,))
            raw.execute("INSERT INTO predictions VALUES (?, 1, 0.9, '[]', 1)", (item_id,))
        raw.executemany("INSERT INTO labels VALUES (?, 1, 'user', '2024')", [(1,), (3,)])


def dump(path) -> dict[str, list]:
    with sqlite3.connect(path) as raw:
        return {table: raw.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall() for table in TABLES}


def test_upgrade_keeps_every_row_and_then_two_products_share_a_picture(tmp_path, downloader):  # noqa: F811
    path = tmp_path / "old.sqlite"
    picture = write_image(tmp_path / "a.png")
    catalog_at_0006(path, picture)
    before = dump(path)
    engine = make_engine(path)
    upgrade(engine, "0007")
    engine.dispose()
    assert dump(path) == before
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA foreign_key_check").fetchall() == []
        assert raw.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert raw.execute("PRAGMA foreign_keys").fetchone() == (0,)  # a plain connection's default
    with Store(path) as store:  # at head, 0008 drops the pixel vectors of the old model input
        store.save_embeddings("img", [1, 2, 3], np.ones((3, 3), np.float32))
        with make_engine(path).connect() as conn:
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1  # back on for the store's connections
        store.set_title(2, "Navy mug")  # the title trigger came back with the rebuilt table
        assert 2 not in store.load_embeddings("text:t").item_ids

        report = import_feed(store, write_feed(tmp_path / "feed.csv", ["A,Red mug,a.png,", "D,Red mug 2,a.png,"]),
                             downloader=downloader)
        assert report.summary() == "1 added, 1 updated, 0 unchanged, 0 failed"  # A's url became a local file
        d = by_product(store)["D"]
        assert d.sha256 == by_product(store)["A"].sha256 and d.id == report.added[0]
        assert store.load_embeddings("img").item_ids.tolist() == [1, 2, 3, d.id]  # A's vector, shared

        with pytest.raises(sqlite3.IntegrityError), raw_sql(path) as db:  # items without a product id stay unique by content
            db.execute("INSERT INTO items (path, sha256, width, height, file_size, added_at)"
                       " VALUES ('/photos/copy.png', ?, 1, 1, 1, '2024')", ("c" * 64,))


def test_downgrade_refuses_while_products_share_a_picture_and_loses_nothing(tmp_path, downloader):  # noqa: F811
    write_image(tmp_path / "a.png")
    with Store(tmp_path / "c.sqlite") as store:
        import_feed(store, write_feed(tmp_path / "feed.csv", ["A,one,a.png,", "B,two,a.png,"]), downloader=downloader)
        before = dump(store.path)
        with pytest.raises(RuntimeError, match="1 pictures belong to more than one product"):
            command.downgrade(alembic_config(make_engine(store.path)), "0006")
        assert dump(store.path) == before and store.item_count() == 2


def test_opening_waits_while_another_process_upgrades_longer_than_a_busy_timeout(tmp_path, monkeypatch):
    """A second opener of an old catalog waits for the first one's upgrade (minutes on a big
    catalog) instead of failing with "database is locked" after one busy timeout."""
    import threading
    import time

    from protoshelf.core import store as store_module
    from protoshelf.core.migrations import current_revision, head_revision

    path = tmp_path / "old.sqlite"
    catalog_at_0006(path, write_image(tmp_path / "a.png"))
    monkeypatch.setattr(store_module, "BUSY_TIMEOUT_S", 0.2)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # the other process, mid-upgrade
    opened = {}

    def open_it():
        try:
            with Store(path) as store:
                opened["items"] = store.item_count()
        except Exception as exc:  # noqa: BLE001 - the failure this test is about
            opened["error"] = exc

    opener = threading.Thread(target=open_it)
    opener.start()
    time.sleep(1.0)  # five busy timeouts
    assert opener.is_alive() and not opened
    holder.execute("ROLLBACK")
    holder.close()
    opener.join(30)
    assert opened == {"items": 3}
    assert current_revision(make_engine(path)) == head_revision()


def test_downgrading_past_0009_keeps_the_items_triggers(tmp_path):
    """Dropping `feed_category` rebuilds the items table; 0002's trigger must come back with it."""
    with Store(tmp_path / "c.sqlite") as store:
        path = store.path
    command.downgrade(alembic_config(make_engine(path)), "0008")
    with raw_sql(path) as db:
        triggers = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'items'")]
        columns = [row[1] for row in db.execute("PRAGMA table_info(items)")]
    assert triggers == ["text_embeddings_follow_titles"] and "feed_category" not in columns
