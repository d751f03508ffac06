"""Importing product feeds into a real catalog: identity by product id, re-import counts, URLs."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from protoshelf.core.downloads import ImageDownloader
from protoshelf.core.export import export_csv
from protoshelf.core.feed_import import import_feed
from protoshelf.core.feeds import FeedError
from protoshelf.core.progress import Cancelled
from protoshelf.core.schema import Item
from protoshelf.core.store import ProductIdsChanged
from tests.conftest import raw_sql, write_image
from tests.image_server import ImageServer


def write_feed(path: Path, rows: list[str], header: str = "id,title,image_link,product_type") -> Path:
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def by_product(store) -> dict[str, Item]:
    items = store.items(store.item_ids().tolist())
    return {i.product_id: i for i in items.values()}


@pytest.fixture
def downloader(tmp_path):
    return ImageDownloader(tmp_path / "cache", timeout=(2, 0.5), retries=1, backoff=0.01)


def test_feed_with_relative_and_file_urls(store, tmp_path, downloader):
    write_image(tmp_path / "img" / "a.png")
    b = write_image(tmp_path / "img" / "b.png", (0, 200, 0))
    feed = write_feed(tmp_path / "feed.csv", ["A,Red apple,img/a.png,Fruit", f"B,Green apple,{b.as_uri()},Fruit"])
    report = import_feed(store, feed, downloader=downloader)
    assert report.summary() == "2 added, 0 updated, 0 unchanged, 0 failed"
    items = by_product(store)
    assert items["A"].title == "Red apple" and items["B"].path == str(b)
    fruit = store.category_id("Fruit")
    assert store.labels() == {items["A"].id: fruit, items["B"].id: fruit}
    write_image(tmp_path / "img" / "c.png", (0, 0, 200))
    import_feed(store, write_feed(tmp_path / "more.csv", ["A,Red apple,img/a.png,Fruit", "C,Mug,img/c.png,Mugs"]),
                downloader=downloader)
    assert [(c.name, c.position) for c in store.categories()] == [("Fruit", 1), ("Mugs", 2)]  # numbered as the app's


def test_reimport_updates_by_product_id(store, tmp_path, downloader):
    write_image(tmp_path / "a.png")
    write_image(tmp_path / "b.png", (0, 200, 0))
    write_image(tmp_path / "c.png", (0, 0, 200))
    feed = write_feed(tmp_path / "feed.csv", ["A,Red apple,a.png,Fruit", "B,Green apple,b.png,Fruit"])
    first = import_feed(store, feed, downloader=downloader)
    store.save_embeddings("m", first.added, np.ones((2, 3), np.float32))
    write_feed(feed, ["A,Red apple,a.png,Fruit", "B,Green apple (new),c.png,Veg", "C,,missing.png,"])
    second = import_feed(store, feed, downloader=downloader)
    assert second.summary() == "0 added, 1 updated, 1 unchanged, 1 failed"
    assert store.item_count() == 2
    items = by_product(store)
    assert items["B"].title == "Green apple (new)" and items["B"].path.endswith("c.png")
    assert store.labels()[items["B"].id] == store.category_id("Veg")
    assert store.items_without_embedding("m") == [(items["B"].id, items["B"].path)]  # new picture, old vector gone
    assert second.failed[0][0] == "line 4 (product C)" and "file not found" in second.failed[0][1]


def test_a_label_set_by_hand_survives_the_same_feed_until_the_shop_changes_its_category(store, tmp_path, downloader):
    write_image(tmp_path / "a.png")
    write_image(tmp_path / "b.png", (0, 200, 0))
    feed = write_feed(tmp_path / "feed.csv", ["A,Tennis ball,a.png,Fruit", "B,Apple,b.png,Fruit"])
    import_feed(store, feed, downloader=downloader)
    items = by_product(store)
    store.set_labels([items["A"].id], store.create_category("Sports"))
    store.set_labels([items["B"].id], None)
    again = import_feed(store, feed, downloader=downloader)
    assert again.summary() == "0 added, 0 updated, 2 unchanged, 0 failed"
    assert store.labels() == {items["A"].id: store.category_id("Sports")}  # and B stays unlabelled
    write_feed(feed, ["A,Tennis ball,a.png,Balls", "B,Apple,b.png,Fruit"])
    changed = import_feed(store, feed, downloader=downloader)
    assert changed.updated == [items["A"].id] and changed.unchanged == [items["B"].id]
    assert store.labels() == {items["A"].id: store.category_id("Balls")}
    write_feed(feed, ["A,Tennis ball,a.png,Balls", "B,Apple,b.png,\u200b"])
    for _ in range(2):  # a refused category is said on every import, not only the first
        assert "refused" in " ".join(import_feed(store, feed, downloader=downloader).notes)


def test_no_labels_ignores_categories(store, tmp_path, downloader):
    write_image(tmp_path / "a.png")
    import_feed(store, write_feed(tmp_path / "feed.csv", ["A,Red apple,a.png,Fruit"]), labels=False, downloader=downloader)
    assert store.labels() == {} and store.categories() == []


def test_rows_without_id_fall_back_to_the_picture(store, tmp_path, downloader):
    write_image(tmp_path / "a.png")
    feed = write_feed(tmp_path / "feed.csv", [",Red apple,a.png,"])
    assert len(import_feed(store, feed, downloader=downloader).added) == 1
    assert import_feed(store, feed, downloader=downloader).summary() == "0 added, 0 updated, 1 unchanged, 0 failed"


def test_products_sharing_a_picture_are_two_items_embedded_once(store, tmp_path, downloader):
    write_image(tmp_path / "a.png")
    feed = write_feed(tmp_path / "feed.csv", ["A,Mug red S,a.png,Mugs", "B,Mug red L,a.png,Mugs"])
    assert import_feed(store, feed, downloader=downloader).summary() == "2 added, 0 updated, 0 unchanged, 0 failed"
    items = by_product(store)
    a, b = items["A"], items["B"]
    assert a.id != b.id and a.sha256 == b.sha256 and a.thumbnail == b.thumbnail and a.width == b.width
    assert store.labels() == {a.id: store.category_id("Mugs"), b.id: store.category_id("Mugs")}
    assert store.items_without_embedding("m") == [(a.id, a.path)]  # one picture, embedded once
    store.save_embeddings("m", [a.id], np.array([[1, 2, 3]], np.float32))
    vectors = store.load_embeddings("m")
    assert vectors.item_ids.tolist() == [a.id, b.id] and (vectors.matrix == [1, 2, 3]).all()
    assert store.items_without_embedding("m") == []
    write_feed(feed, ["A,Mug red S,a.png,Mugs", "B,Mug red L,a.png,Mugs", "C,Mug red XL,a.png,Mugs"])
    again = import_feed(store, feed, downloader=downloader)
    assert again.summary() == "1 added, 0 updated, 2 unchanged, 0 failed"
    c = by_product(store)["C"]
    assert store.load_embeddings("m").item_ids.tolist() == [a.id, b.id, c.id]  # the vector came with the picture
    export_csv(store, tmp_path / "google.csv", format="google")
    assert (tmp_path / "google.csv").read_text().splitlines() == ["id,product_type", "A,Mugs", "B,Mugs", "C,Mugs"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX")
def test_file_url_to_a_fifo_is_refused_without_blocking(store, tmp_path, downloader):
    os.mkfifo(tmp_path / "pipe.png")
    report = import_feed(store, write_feed(tmp_path / "feed.csv", [f"A,x,{(tmp_path / 'pipe.png').as_uri()},",
                                                                   "B,y,/dev/zero,"]), downloader=downloader)
    assert [reason for _, reason in report.failed] == ["not a regular file (a folder, device or pipe)"] * 2


def test_bad_feed_loses_nothing(store, tmp_path, downloader):
    write_image(tmp_path / "a.png")
    import_feed(store, write_feed(tmp_path / "feed.csv", ["A,x,a.png,"]), downloader=downloader)
    with pytest.raises(FeedError, match="no image column"):
        import_feed(store, write_feed(tmp_path / "bad.csv", ["A,x"], header="id,title"), downloader=downloader)
    assert store.item_count() == 1


def test_a_row_with_a_nul_character_fails_with_a_reason_and_the_rest_imports(store, tmp_path, downloader):
    for name in ("a.png", "b.png"):
        write_image(tmp_path / name, colour=(200, 30, 30) if name == "a.png" else (30, 30, 200))
    report = import_feed(store, write_feed(tmp_path / "feed.csv", ["A,Mug,a.png,", "B\x00,Cup,b.png,"]), downloader=downloader)
    assert report.summary() == "1 added, 0 updated, 0 unchanged, 1 failed"
    assert "NUL character" in report.failed[0][1] and set(by_product(store)) == {"A"}


def test_urls_download_with_per_row_reasons(store, tmp_path, downloader):
    png = write_image(tmp_path / "src" / "a.png").read_bytes()
    with ImageServer({"/a.png": png}, slow_seconds=1.5) as server:
        feed = write_feed(tmp_path / "feed.csv", [
            f"A,ok,{server.url}/a.png,", f"B,gone,{server.url}/missing/b.png,", f"C,page,{server.url}/html/a.png,",
            f"D,slow,{server.url}/slow/a.png,", f"E,moved,{server.url}/redirect/a.png,",
        ])
        report = import_feed(store, feed, downloader=downloader)
    assert report.summary() == "2 added, 0 updated, 0 unchanged, 3 failed"
    reasons = dict(report.failed)
    assert "HTTP 404" in reasons["line 3 (product B)"] and "timed out" in reasons["line 5 (product D)"]
    items = by_product(store)
    assert items["E"].sha256 == items["A"].sha256  # the redirect led to A's bytes: a second product, same picture
    item = items["A"]
    assert item.image_url == f"{server.url}/a.png" and Path(item.path).is_relative_to(downloader.cache_dir)


def test_cancelled_import_keeps_finished_batches_and_continues(store, tmp_path, downloader, monkeypatch):
    monkeypatch.setattr("protoshelf.core.feed_import.BATCH_ROWS", 2)
    rows = [f"P{i},t{i},{write_image(tmp_path / f'{i}.png', (i * 40, 10, 10)).name}," for i in range(5)]
    feed = write_feed(tmp_path / "feed.csv", rows)

    def cancel_after_first_batch(done, total):
        if done >= 2:
            raise Cancelled

    with pytest.raises(Cancelled):
        import_feed(store, feed, downloader=downloader, progress=cancel_after_first_batch)
    assert store.item_count() == 2
    assert import_feed(store, feed, downloader=downloader).summary() == "3 added, 0 updated, 2 unchanged, 0 failed"


def test_a_picture_from_a_folder_becomes_the_product(store, tmp_path, downloader):
    from protoshelf.core.importer import import_images

    picture = write_image(tmp_path / "a.png")
    (existing,) = import_images(store, [picture]).added
    store.set_labels([existing], store.create_category("Kept"))
    report = import_feed(store, write_feed(tmp_path / "feed.csv", ["A,Red apple,a.png,", ",Red apple,a.png,"]),
                         downloader=downloader)
    assert report.updated == [existing] and report.unchanged == [existing] and store.item_count() == 1
    assert by_product(store)["A"].id == existing and store.labels() == {existing: store.category_id("Kept")}


def test_catalogs_from_before_product_ids_upgrade_and_keep_their_items(tmp_path):
    import sqlite3

    from protoshelf.core.migrations import upgrade
    from protoshelf.core.store import Store, make_engine

    path = tmp_path / "old.sqlite"
    engine = make_engine(path)
    upgrade(engine, "0003")
    engine.dispose()
    with sqlite3.connect(path) as conn:
        conn.executemany("INSERT INTO items (id, path, sha256, width, height, file_size, added_at)"
                         " VALUES (?, ?, ?, 1, 1, 1, '2024-01-01')", [(1, "/a.png", "a" * 64), (2, "/b.png", "b" * 64)])
    with Store(path) as store:
        assert store.item_count() == 2 and store.product_info(1) == (None, None)
        with raw_sql(path) as db:
            db.execute("UPDATE items SET product_id = 'SKU-1' WHERE id = 1")
        with pytest.raises(sqlite3.IntegrityError), raw_sql(path) as db:
            db.execute("UPDATE items SET product_id = 'SKU-1' WHERE id = 2")
        assert store.item_ids_by_product_id(["SKU-1", "nope"]) == {"SKU-1": 1}


def test_folder_imports_keep_products_that_share_a_picture_right(store, tmp_path, downloader):
    """Importing the folder again finds the picture (no third item); a moved folder re-points both
    products; a file changed in place updates both and drops their image vectors."""
    from protoshelf.core.images import file_sha256
    from protoshelf.core.importer import import_images, relocate

    shop = tmp_path / "shop"
    picture = write_image(shop / "a.png")
    import_feed(store, write_feed(tmp_path / "feed.csv", [f"A,S,{picture.as_uri()},", f"B,L,{picture.as_uri()},"]),
                downloader=downloader)
    a, b = by_product(store)["A"].id, by_product(store)["B"].id
    assert import_images(store, [shop]).existing == [a] and store.item_count() == 2
    os.rename(shop, tmp_path / "moved")
    moved = import_images(store, [tmp_path / "moved"])
    assert moved.moved == [a] and {i.path for i in store.items([a, b]).values()} == {str(tmp_path / "moved" / "a.png")}
    store.save_embeddings("m", [a], np.ones((1, 3), np.float32))
    assert store.load_embeddings("m").item_ids.tolist() == [a, b]
    write_image(tmp_path / "moved" / "a.png", (0, 0, 250))
    changed = import_images(store, [tmp_path / "moved"])
    assert changed.changed == [a] and store.item_count() == 2
    items = store.items([a, b])
    assert items[a].sha256 == items[b].sha256 == file_sha256(tmp_path / "moved" / "a.png")
    assert len(store.load_embeddings("m")) == 0
    os.rename(tmp_path / "moved", tmp_path / "again")
    assert relocate(store, tmp_path / "moved", tmp_path / "again").moved == 2



def test_a_changed_id_column_asks_then_renames_or_adds(store, tmp_path, downloader):
    """The shop's export now names products by SKU instead of handle: the same pictures under new
    ids. Without a word from the user nothing is written; --ids-changed renames the items (labels,
    vectors stay); --new-ids adds them as new products."""
    write_image(tmp_path / "a.png")
    write_image(tmp_path / "b.png", (0, 200, 0))
    import_feed(store, write_feed(tmp_path / "feed.csv", ["mug,Mug,a.png,Kitchen", "cap,Cap,b.png,Hats"]),
                downloader=downloader)
    before = {i.id: (i.product_id, i.sha256) for i in store.items(store.item_ids().tolist()).values()}
    labels = store.labels()
    store.save_embeddings("m", list(before), np.ones((2, 3), np.float32))
    renamed = write_feed(tmp_path / "skus.csv", ["SKU-1,Mug,a.png,Kitchen", "SKU-2,Cap,b.png,Hats"], header="sku,title,image,type")
    with pytest.raises(ProductIdsChanged, match="'SKU-1' has the picture of 'mug'.*--ids-changed.*--new-ids"):
        import_feed(store, renamed, downloader=downloader)
    assert {i.id: (i.product_id, i.sha256) for i in store.items(list(before)).values()} == before

    report = import_feed(store, renamed, downloader=downloader, ids_changed=True)
    assert report.summary() == "0 added, 2 updated, 0 unchanged, 0 failed" and report.renamed == [("mug", "SKU-1"), ("cap", "SKU-2")]
    assert "2 products took the feed's new ids" in report.renamed_note() and report.notes == []
    assert {p: i.id for p, i in by_product(store).items()} == {"SKU-1": min(before), "SKU-2": max(before)}
    assert store.labels() == labels and len(store.load_embeddings("m")) == 2
    assert import_feed(store, renamed, downloader=downloader).summary() == "0 added, 0 updated, 2 unchanged, 0 failed"

    back = write_feed(tmp_path / "old.csv", ["mug,Mug,a.png,Kitchen"])
    assert import_feed(store, back, downloader=downloader, ids_changed=False).summary() == \
        "1 added, 0 updated, 0 unchanged, 0 failed"
    assert store.item_count() == 3


def test_interrupted_downloads_resume_and_a_shared_url_is_fetched_once(store, tmp_path, downloader, monkeypatch):
    """Ctrl-C while a batch downloads: finished batches stay, finished downloads stay in the cache,
    and the rerun fetches only the rest; two ids with one URL download it once and become two items."""
    monkeypatch.setattr("protoshelf.core.feed_import.BATCH_ROWS", 2)
    files = {f"/{i}.png": write_image(tmp_path / "src" / f"{i}.png", (i * 40, 10, 10)).read_bytes() for i in range(5)}
    real_fetch = ImageDownloader.fetch

    def interrupted(self, url):
        if url.endswith("/3.png"):
            raise KeyboardInterrupt
        return real_fetch(self, url)

    with ImageServer(files) as server:
        feed = write_feed(tmp_path / "feed.csv", [f"P{i},t{i},{server.url}/{i}.png," for i in range(5)]
                          + [f"P5,same url as P0,{server.url}/0.png,"])
        monkeypatch.setattr(ImageDownloader, "fetch", interrupted)
        with pytest.raises(KeyboardInterrupt):
            import_feed(store, feed, downloader=downloader)
        monkeypatch.setattr(ImageDownloader, "fetch", real_fetch)
        assert store.item_count() == 2
        report = import_feed(store, feed, downloader=downloader)
    assert report.summary() == "4 added, 0 updated, 2 unchanged, 0 failed"
    assert [server.hits[f"/{i}.png"] for i in (0, 1, 3, 4)] == [1, 1, 1, 1]  # 2 may have been stopped half-way
    items = by_product(store)
    assert items["P5"].sha256 == items["P0"].sha256 and items["P5"].id != items["P0"].id
    assert not list((downloader.cache_dir / "partial").glob("*"))


def test_cancel_while_a_server_asks_to_wait_stops_at_once(store, tmp_path):
    """A 503 with Retry-After: 30 on every picture: Cancel (from the progress callback, as the app's
    button does) ends the import within a second instead of after three 30 s waits per row."""
    import threading
    import time

    png = write_image(tmp_path / "src" / "a.png").read_bytes()
    with ImageServer({"/a.png": png}, flaky_failures=10, retry_after="30") as server:
        feed = write_feed(tmp_path / "feed.csv", [f"P{i},t,{server.url}/flaky/a.png?{i}," for i in range(4)])
        started = time.monotonic()

        def cancel_soon(done, total):
            if time.monotonic() - started > 0.5:
                raise Cancelled

        with pytest.raises(Cancelled):
            import_feed(store, feed, downloader=ImageDownloader(tmp_path / "cache"), progress=cancel_soon)
        assert time.monotonic() - started < 3
    assert store.item_count() == 0 and server.hits  # the server was asked, and asked us to wait
    assert not [t for t in threading.enumerate() if t.name.startswith("download")]
    assert not list((tmp_path / "cache" / "partial").glob("*"))
