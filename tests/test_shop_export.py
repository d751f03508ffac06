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
    assert export_csv(store, tmp_path / "g.csv", format="google") == 2
    assert read(tmp_path / "g.csv") == [["id", "product_type"], ["SKU-1", "Shoes"], ["'=HYPERLINK(1)", "Pans"]]


def test_shopify_csv_and_include_unassigned(store, tmp_path):
    catalog(store)
    assert export_csv(store, tmp_path / "s.csv", format="shopify", include_unassigned=True) == 3
    assert read(tmp_path / "s.csv") == [
        ["Handle", "Title", "Type"], ["SKU-1", "Red shoe", "Shoes"], ["'=HYPERLINK(1)", "Pan", "Pans"], ["SKU-3", "Hat", ""],
    ]
