"""Reading product feeds: separators, BOM, aliases, Shopify rows, duplicates and hostile headers."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from protoshelf.core.feeds import MAX_HEADER_CHARS, FeedError, image_source, read_feed


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_text(text, encoding=encoding, newline="")
    return path


@pytest.mark.parametrize("separator", [",", ";", "\t"])
def test_separator_is_the_one_the_header_uses(tmp_path, separator):
    feed = read_feed(write(tmp_path / "feed.csv", separator.join(["ID", "Title", "Image Link"]) + "\r\n"
                           + separator.join(["A-1", "Red apple", "a.png"]) + "\r\n"))
    assert [(r.product_id, r.title, r.image) for r in feed.rows()] == [("A-1", "Red apple", "a.png")]


def test_bom_quoted_newlines_and_case_insensitive_aliases(tmp_path):
    text = 'SKU,Name,Price,IMAGE-URL,Category\n"S1","Two\nlines","3","x.png",Fruit\n'
    feed = read_feed(write(tmp_path / "feed.csv", text, encoding="utf-8-sig"))
    (row,) = feed.rows()
    assert (row.product_id, row.title, row.image, row.category) == ("S1", "Two\nlines", "x.png", "Fruit")
    assert feed.columns["product_id"] == "SKU"  # the BOM did not stick to the first name


def test_shopify_handle_is_the_id_and_variant_rows_continue_the_product(tmp_path):
    text = (
        "Handle,Title,Variant SKU,Image Src,Type\n"
        "red-shirt,Red shirt,RS-S,https://cdn/a.jpg,Shirts\n"
        "red-shirt,,RS-M,https://cdn/b.jpg,\n"
        "blue-shirt,Blue shirt,BS-S,https://cdn/c.jpg,Shirts\n"
    )
    feed = read_feed(write(tmp_path / "products_export.csv", text))
    rows = list(feed.rows())
    assert [(r.product_id, r.image) for r in rows] == [("red-shirt", "https://cdn/a.jpg"), ("blue-shirt", "https://cdn/c.jpg")]
    assert not feed.problems


def test_woocommerce_categories_not_its_type_are_the_category(tmp_path):
    """WooCommerce's Type (simple, variable, variation) matched the `type` alias: every product
    became an example of "simple", and a Google export sent that back as its product_type."""
    text = (
        "ID,Type,SKU,Name,Published,Categories,Images\n"
        "101,simple,WOO-1,Ripe banana,1,Food > Fruit,https://cdn/a.jpg\n"
        "102,variable,WOO-2,Guitar,1,\"Gifts, Music, Music > Guitars, Sale\",\"https://cdn/b.jpg, https://cdn/c.jpg\"\n"
        "103,simple,WOO-3,Pens,1,\"Pens\\, pencils, Office\",https://cdn/d.jpg\n"
        "104,variation,WOO-2-L,Guitar - Large,1,,https://cdn/e.jpg\n"
    )
    feed = read_feed(write(tmp_path / "wc-product-export.csv", text))
    assert [(r.category, r.image) for r in feed.rows()] == [
        ("Food > Fruit", "https://cdn/a.jpg"), ("Music > Guitars", "https://cdn/b.jpg"),
        ("Pens, pencils", "https://cdn/d.jpg"), (None, "https://cdn/e.jpg"),
    ]


def test_duplicate_ids_last_row_wins_and_is_reported(tmp_path):
    text = "id,title,image_link\nP1,old,a.png\nP2,two,b.png\nP1,new,c.png\n"
    feed = read_feed(write(tmp_path / "feed.csv", text))
    assert [(r.product_id, r.title) for r in feed.rows()] == [("P2", "two"), ("P1", "new")]
    assert any("'P1' appears 2 times (lines 2, 4); the last one wins" in p for p in feed.problems)


def test_rows_without_id_are_kept_and_reported(tmp_path):
    feed = read_feed(write(tmp_path / "feed.csv", "id,image_link\n,a.png\nP2,b.png\n"))
    assert [r.product_id for r in feed.rows()] == [None, "P2"]
    assert any("line 2: no product id" in p for p in feed.problems)


def test_missing_image_column_names_the_columns_found(tmp_path):
    with pytest.raises(FeedError, match=r"no image column .* columns found: 'id', 'title', 'price'"):
        read_feed(write(tmp_path / "feed.csv", "id,title,price\nP1,x,3\n"))


def test_gigantic_header_is_refused_unread(tmp_path):
    with pytest.raises(FeedError, match="header row is longer than 64 KiB"):
        read_feed(write(tmp_path / "feed.csv", "id," + "x" * MAX_HEADER_CHARS + ",image\n"))


def test_gigantic_cell_is_a_clear_error(tmp_path):
    feed = read_feed(write(tmp_path / "ok.csv", "id,image\nP1,a.png\n"))
    write(feed.path, 'id,image\nP1,"' + "x" * 200_000 + '"\n')
    with pytest.raises(FeedError, match="near line"):
        list(feed.rows())


def test_not_utf8_is_a_clear_error(tmp_path):
    with pytest.raises(FeedError, match="not UTF-8"):
        read_feed(write(tmp_path / "feed.csv", "id,image\nP1,caf\xe9.png\n", encoding="latin-1"))


def test_image_sources(tmp_path):
    assert image_source("https://shop.example/a.jpg", tmp_path) == ("url", "https://shop.example/a.jpg")
    assert image_source("file:///srv/a%20b.png", tmp_path) == ("file", "/srv/a b.png")
    assert image_source("images/a.png", tmp_path) == ("file", os.path.join(tmp_path, "images/a.png"))
    with pytest.raises(ValueError, match="unsupported image link"):
        image_source("ftp://host/a.png", tmp_path)
    with pytest.raises(ValueError, match="no image"):
        image_source("", tmp_path)


RSS = """<?xml version="1.0"?>
<rss version="2.0" xmlns:g="http://base.google.com/ns/1.0"><channel><title>Shop</title>
<item><g:id>A-1</g:id><title>Red apple</title><g:image_link>https://cdn/a.jpg</g:image_link>
  <g:google_product_category>Food</g:google_product_category></item>
<item><g:id>A-2</g:id><g:title>Pear</g:title><g:image_link>img/p.png</g:image_link></item>
<item><g:id>A-1</g:id><title>Red apple (2)</title><g:image_link>https://cdn/a2.jpg</g:image_link>
  <g:product_type>Fruit</g:product_type></item>
</channel></rss>"""


def test_merchant_center_xml_feed(tmp_path):
    feed = read_feed(write(tmp_path / "feed.xml", RSS))
    rows = [(r.product_id, r.title, r.image, r.category, r.where) for r in feed.rows()]
    assert rows == [("A-2", "Pear", "img/p.png", None, "item 2 (product A-2)"),
                    ("A-1", "Red apple (2)", "https://cdn/a2.jpg", "Fruit", "item 3 (product A-1)")]
    assert any("'A-1' appears 2 times (items 1, 3)" in p for p in feed.problems)


def test_xml_entity_bomb_is_refused(tmp_path):
    bomb = ('<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaa">'
            + "".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">' for i in range(8))
            + ']><rss><channel><item><g:id xmlns:g="g">&i;</g:id></item></channel></rss>')
    with pytest.raises(FeedError, match="not a well-formed XML feed"):
        read_feed(write(tmp_path / "bomb.xml", bomb))
