"""The feed round trip from the command line: the example feed in, labels by product id, the
supplemental feed out."""
from __future__ import annotations

import csv
from pathlib import Path

from protoshelf.core.cli import PARTLY_DONE, main

EXAMPLE = Path(__file__).resolve().parent.parent / "resources" / "example_feed" / "products.csv"


def run(capsys, *argv) -> tuple[str, str]:
    assert main(list(argv)) == 0
    captured = capsys.readouterr()
    return captured.out, captured.err


def test_feed_round_trip(tmp_path, capsys, monkeypatch):
    db = str(tmp_path / "c.sqlite")
    assert "10 added, 0 updated, 0 unchanged, 0 failed" in run(capsys, "import", str(EXAMPLE), "--db", db)[0]
    assert "0 added, 0 updated, 10 unchanged, 0 failed" in run(capsys, "import", str(EXAMPLE), "--db", db)[0]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "SKU-1005").write_text("a file that happens to share a product id's name")
    out, err = run(capsys, "label", "Fruit", "SKU-1004", "SKU-1005", "--db", db)
    assert "Labelled 2 items as 'Fruit' (2 by product id, 0 newly imported)" in out
    assert "SKU-1005 is both a product id and a file: labelled product SKU-1005" in err
    run(capsys, "export", str(tmp_path / "supplemental.csv"), "--format", "google", "--db", db)
    assert main(["export", str(tmp_path / "excel.csv"), "--format", "google", "--excel", "--db", db]) == 2
    assert "--excel is for ProtoShelf's own format" in capsys.readouterr().err and not (tmp_path / "excel.csv").exists()
    with open(tmp_path / "supplemental.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["id", "product_type"]
    assert sorted(rows[1:]) == sorted([["SKU-1001", "Fruit"], ["SKU-1002", "Fruit"], ["SKU-1003", "Fruit"],
                                       ["SKU-1004", "Fruit"], ["SKU-1005", "Fruit"], ["SKU-2001", "Music"],
                                       ["SKU-2002", "Music"], ["SKU-2003", "Music"]])


def test_label_with_the_category_forgotten_labels_nothing(tmp_path, capsys, monkeypatch):
    """`label SKU-1001 SKU-1002` made a category "SKU-1001" and moved SKU-1002 out of Fruit."""
    db = str(tmp_path / "c.sqlite")
    run(capsys, "import", str(EXAMPLE), "--db", db)
    monkeypatch.chdir(EXAMPLE.parent)
    for forgotten in (["SKU-1001", "SKU-1002"], ["../demo/images/banana.png", "../demo/images/red_apple.png"],
                      ["../demo/images/", "../demo/images/banana.png"]):
        assert main(["label", *forgotten, "--db", db]) == 2
        assert "so it was not taken as a new category name; the category comes first" in capsys.readouterr().err
    assert "SKU-1001" not in run(capsys, "categories", "--db", db)[0]
    run(capsys, "label", "Fruit", "SKU-2001", "--db", db)  # the usual order still works
    long_path = " > ".join(["Apparel & Accessories", "Clothing", "Outerwear", "Coats & Jackets"] * 8)
    assert len(long_path.encode()) > 255  # longer than a file name can be: asking the disk raised OSError
    run(capsys, "label", long_path, "SKU-2002", "--db", db)


def test_a_long_category_path_from_the_shop_goes_back_whole(tmp_path, capsys):
    """Names over 120 characters were refused: the product came in unlabelled, and a Google export
    with --include-unassigned then wrote an empty product_type that would blank it on the shop."""
    path = "Home & Garden > Kitchen & Dining > Kitchen Tools & Utensils > Kitchen Knives > Chef's Knives & Santoku Knives > Extra long blades"
    assert len(path) > 120
    feed = tmp_path / "long.csv"
    feed.write_text(f"id,title,image_link,product_type\nG2,Knife,{EXAMPLE.parent.parent / 'demo/images/axe.png'},"
                    f"\"{path}\"\n", encoding="utf-8")
    db = str(tmp_path / "c.sqlite")
    run(capsys, "import", str(feed), "--db", db)
    run(capsys, "export", str(tmp_path / "out.csv"), "--format", "google", "--include-unassigned", "--db", db)
    with open(tmp_path / "out.csv", newline="", encoding="utf-8") as handle:
        assert list(csv.reader(handle)) == [["id", "product_type"], ["G2", path]]


def test_feed_problems_are_one_line_messages(tmp_path, capsys):
    feed = tmp_path / "feed.csv"
    feed.write_text("id;title;price\nA;x;3\n", encoding="utf-8")
    assert main(["import", str(feed), "--db", str(tmp_path / "c.sqlite")]) == 2
    assert "no image column" in capsys.readouterr().err
    assert main(["import", str(feed), str(tmp_path), "--db", str(tmp_path / "c.sqlite")]) == 2
    assert "not both" in capsys.readouterr().err


def test_a_feed_that_cannot_be_imported_makes_no_catalog_and_stops_the_others(tmp_path, capsys):
    """The store was opened (and made) before the feed was read: a mistyped --db got an empty
    catalog, which a later export read as "0 rows" over a good file; and two feeds whose second was
    refused imported the first, then exited 2, which says nothing changed."""
    bad = tmp_path / "no_images.csv"
    bad.write_text("id,title\nA,b\n", encoding="utf-8")
    latin = tmp_path / "latin.csv"
    latin.write_bytes(b"id,title,image_link\nA,caf\xe9,a.png\n")
    db = tmp_path / "typo.sqlite"
    for feeds in ([bad], [latin], [EXAMPLE, bad]):
        assert main(["import", *map(str, feeds), "--db", str(db)]) == 2
        assert capsys.readouterr().err.startswith("protoshelf: ") and not db.exists()


def test_what_a_feed_says_is_printed_escaped(tmp_path, capsys):
    """A product id is the shop's text: it must neither colour the terminal nor forge a line."""
    feed = tmp_path / "feed\x1b[31m.csv"
    feed.write_text('id,title,image_link\n"SKU-\x1b[31mRED",x,missing.png\n"SKU-4\nfailed fake",y,gone.png\n',
                    encoding="utf-8")
    assert main(["import", str(feed), "--db", str(tmp_path / "c.sqlite")]) == PARTLY_DONE  # both rows failed
    out, err = capsys.readouterr()
    assert "\x1b" not in out + err and "\\x1b" in err and "\\x1b" in out
    assert [line.startswith("failed ") for line in err.splitlines() if line.strip()] == [True, True]


def test_a_changed_id_column_is_one_question_then_one_flag(tmp_path, capsys):
    db = str(tmp_path / "c.sqlite")
    run(capsys, "import", str(EXAMPLE), "--db", db)
    rows = list(csv.DictReader(EXAMPLE.open(encoding="utf-8")))
    by_handle = tmp_path / "handles.csv"
    with by_handle.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["handle", "title", "image link"])
        writer.writerows([[f"h-{r['id']}", r["title"], str(EXAMPLE.parent / r["image_link"])] for r in rows])
    assert main(["import", str(by_handle), "--db", db]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "did the feed's id column change?" in err
    out, err = run(capsys, "import", str(by_handle), "--ids-changed", "--db", db)
    assert "0 added, 10 updated" in out and "10 products took the feed's new ids" in err
