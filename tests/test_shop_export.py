"""Exports a shop imports back: product id first, Merchant Center and Shopify formats."""
from __future__ import annotations

import csv

from conftest import raw_sql, seed_titles
from protoshelf.core.export import export_csv


def with_product_ids(store, ids, product_ids):
    with raw_sql(store.path) as db:
        db.executemany("UPDATE items SET product_id = ? WHERE id = ?", zip(product_ids, ids))


def read(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.reader(handle))


def catalog(store):
    """Four products: labelled, predicted, unassigned, and one without a product id."""
    ids = seed_titles(store, ["Red shoe", "Pan", "Hat", "Loose file"])
    with_product_ids(store, ids[:3], ["SKU-1", "=HYPERLINK(1)", "SKU-3"])
    shoes, pans = store.create_category("Shoes"), store.create_category("Pans")
    store.set_labels([ids[0]], shoes)
    store.save_predictions("prototypes", "m", {}, ids, [pans, pans, None, pans], [0.9, 0.8, 0.2, 0.9],
                           [[(pans, 0.9)], [(pans, 0.8)], [(pans, 0.2)], [(pans, 0.9)]])
    return ids


def test_default_export_puts_the_product_id_first(store, tmp_path):
    ids = catalog(store)
    export_csv(store, tmp_path / "out.csv", top=1)
    rows = read(tmp_path / "out.csv")
    assert rows[0][:2] == ["product_id", "item_id"]
    assert [r[:2] for r in rows[1:]] == [["SKU-1", str(ids[0])], ["'=HYPERLINK(1)", str(ids[1])],
                                         ["SKU-3", str(ids[2])], ["", str(ids[3])]]


def test_google_supplemental_feed_uses_label_then_prediction(store, tmp_path):
    catalog(store)
    notes = []
    assert export_csv(store, tmp_path / "g.csv", format="google", notes=notes) == 2
    assert read(tmp_path / "g.csv") == [["id", "product_type"], ["SKU-1", "Shoes"], ["=HYPERLINK(1)", "Pans"]]
    assert len(notes) == 1 and "(1) are written exactly" in notes[0]


def test_shop_formats_write_ids_and_titles_exactly_as_the_shop_gave_them(store, tmp_path):
    """A quote before "-50% sale" would rename the product on the live shop; before an id, miss it."""
    ids = seed_titles(store, ["-50% Summer sandals", "@home mug"])
    with_product_ids(store, ids, ["-1001", "+1002"])
    store.set_labels(ids, store.create_category("Sale"))
    notes = []
    assert export_csv(store, tmp_path / "s.csv", format="shopify", notes=notes) == 2
    assert read(tmp_path / "s.csv")[1:] == [["-1001", "-50% Summer sandals", "Sale"], ["+1002", "@home mug", "Sale"]]
    assert "(4) are written exactly" in notes[0]
    export_csv(store, tmp_path / "p.csv", notes=notes)  # ProtoShelf's own format is for spreadsheets
    assert [row[0] for row in read(tmp_path / "p.csv")[1:]] == ["'-1001", "'+1002"] and len(notes) == 1


def test_shopify_csv_and_include_unassigned(store, tmp_path):
    catalog(store)
    assert export_csv(store, tmp_path / "s.csv", format="shopify", include_unassigned=True) == 3
    assert read(tmp_path / "s.csv") == [
        ["Handle", "Title", "Type"], ["SKU-1", "Red shoe", "Shoes"], ["=HYPERLINK(1)", "Pan", "Pans"], ["SKU-3", "Hat", ""],
    ]
