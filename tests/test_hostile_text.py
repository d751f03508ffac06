"""Titles and category names from hostile spreadsheets: formula prefixes, quotes, line breaks, very
long strings, right-to-left and other invisible marks. The catalog keeps what it accepts exactly,
refuses the rest with a sentence a merchandiser understands, and its CSV export round-trips
through Python's csv module with no cell a spreadsheet would run as a formula.
"""
from __future__ import annotations

import csv
import os
import re
import sys
import unicodedata

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from conftest import raw_sql, seed_titles, write_image
from protoshelf.core.export import FORMULA_PREFIXES, export_csv, neutralise
from protoshelf.core.importer import import_with_titles, read_titles_csv
from protoshelf.core.store import MAX_NAME_LENGTH, StoreError, validate_category_name

SCALE = 20 if os.environ.get("PROTOSHELF_FUZZ") == "long" else 1
TEXT = settings(max_examples=150 * SCALE, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

NASTY = [
    "=HYPERLINK(\"http://evil.example\",\"click\")", "=cmd|' /C calc'!A0", "+1+1", "-2+3", "@SUM(A1:A9)",
    "\t=1", "\r=1", "\"quoted\" and 'single'", "comma, separated", "line\nbreak", "crlf\r\nbreak",
    "\u202eevil.exe\u202c", "\u200fשלום\u200f", "مرحبا بالعالم", "emoji 👩‍🍳 ZWJ", "NUL\x00inside",
    "x" * 100_000, "  padded  ", "'already quoted", "\ufeffBOM first", "back\\slash",
]
MESSAGES = {
    "A category needs a name.",
    f"Category names are limited to {MAX_NAME_LENGTH} characters.",
    "Category names cannot contain line breaks, tabs or control characters.",
    "Category names cannot contain invisible text-direction controls.",
    "Category names must be valid Unicode text.",
    "Category names cannot start with an accent or other combining mark.",
    "Category names cannot contain invisible characters such as zero-width spaces.",
}
any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=200)
"""Everything, lone surrogates included (what a non-UTF-8 command-line argument becomes)."""
title_text = st.text(st.characters(codec="utf-8"), max_size=200)
"""Titles come from UTF-8 CSVs and Qt, so they are always encodable."""


def read_back(path):
    limit = csv.field_size_limit(sys.maxsize)  # the 128 KiB default is the reader's, not the file's
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            return list(csv.reader(handle))
    finally:
        csv.field_size_limit(limit)


def assert_formula_safe(rows):
    for row in rows[1:]:
        for cell in row:
            assert not cell.startswith(FORMULA_PREFIXES), f"formula cell {cell[:40]!r}"


def unneutralise(cell: str) -> str:
    return cell[1:] if cell.startswith("'") and cell[1:].startswith(FORMULA_PREFIXES) else cell


# --- category names ------------------------------------------------------------------------

@pytest.mark.slow
@TEXT
@given(any_text)
@example("Shoes")  # a plain name is always tried: a store that refuses everything must fail here
def test_any_category_name_is_kept_exactly_or_refused_clearly(store, name):
    try:
        category = store.create_category(name)
    except StoreError as exc:
        assert str(exc) in MESSAGES, str(exc)
        with pytest.raises(StoreError, match=re.escape(str(exc))):  # refused for the reason it gives
            validate_category_name(name)
        return
    stored = {c.id: c.name for c in store.categories()}[category]
    assert stored == validate_category_name(name)
    assert store.category_id(name) == category
    assert store.ensure_category(name) == category
    store.delete_category(category)


@pytest.mark.parametrize("name,message", [
    ("", "needs a name"), ("   \t ", "needs a name"), ("\u200b\u200d", "needs a name"),
    ("x" * (MAX_NAME_LENGTH + 1), "limited to"), ("Shoes\nSocks", "line breaks"), ("Tab\there", "line breaks"),
    ("Null\x00", "line breaks"), ("Line\u2028separator", "line breaks"), ("Para\u2029graph", "line breaks"),
    ("\u202eseohS", "text-direction"), ("a\u2066b\u2069", "text-direction"),
])
def test_bad_category_names_are_refused_with_a_reason(store, name, message):
    with pytest.raises(StoreError, match=message):
        store.create_category(name)
    shoes = store.create_category("Shoes")
    with pytest.raises(StoreError, match=message):
        store.rename_category(shoes, name)
    assert [c.name for c in store.categories()] == ["Shoes"]


@pytest.mark.parametrize("name", [
    "=SUM(A1)", "-10% sale", "@home", "\"Quoted\" range", "Café", "עברית", "\u200fعربي", "x" * MAX_NAME_LENGTH,
    "👩‍🍳 Chef", "a,b;c",
])
def test_odd_but_fine_category_names_round_trip(store, name):
    category = store.create_category(name)
    assert [c.name for c in store.categories()] == [name]
    assert store.category_id(f"  {name} ") == category


def test_names_differing_only_in_unicode_normal_form_are_one_category(store):
    composed, decomposed = "Caf\u00e9", "Cafe\u0301"
    assert composed != decomposed and unicodedata.normalize("NFC", decomposed) == composed
    category = store.ensure_category(decomposed)
    assert store.ensure_category(decomposed) == store.ensure_category(composed) == category
    assert store.category_id(decomposed) == category
    with pytest.raises(StoreError, match="already exists"):
        store.create_category(composed)


# --- titles and the CSV export ------------------------------------------------------------------

@pytest.mark.slow
@TEXT
@given(st.lists(title_text, min_size=1, max_size=5))
def test_export_round_trips_any_title_and_is_formula_safe(store, tmp_path, titles):
    with raw_sql(store.path) as db:
        db.execute("DELETE FROM items")
    ids = seed_titles(store, titles)
    out = tmp_path / "out.csv"
    assert export_csv(store, out) == len(titles)
    rows = read_back(out)
    assert len({len(r) for r in rows}) == 1
    assert_formula_safe(rows)
    exported = {int(r[1]): r[3] for r in rows[1:]}
    for item_id, title in zip(ids, titles):
        assert unneutralise(exported[item_id]) == (title or "")


def test_nasty_titles_and_category_names_survive_the_export(store, tmp_path):
    ids = seed_titles(store, NASTY)
    names = ["=Sale", "+Plus", "-Minus", "@At", "\"Quoted\"", "\u200fשלום"]
    categories = [store.create_category(n) for n in names]
    store.set_labels(ids[: len(names)], categories[0])
    store.save_predictions("prototypes", "m", {}, ids, [categories[i % len(names)] for i in range(len(ids))],
                           [0.9] * len(ids), [[(c, 0.1) for c in categories[:3]]] * len(ids))
    for excel in (False, True):
        out = tmp_path / f"out-{excel}.csv"
        export_csv(store, out, top=3, excel_bom=excel)
        rows = read_back(out)
        assert len(rows) == len(NASTY) + 1
        assert_formula_safe(rows)
        for row, title in zip(rows[1:], NASTY):
            assert unneutralise(row[3]) == title
            assert unneutralise(row[5]) in names and unneutralise(row[7]) == names[0]


def test_neutralise_quotes_exactly_the_formula_starts():
    for prefix in FORMULA_PREFIXES:
        assert neutralise(prefix + "x") == "'" + prefix + "x"
    for safe in ["x=1", " =1", "'=1", "1+1", "\u200f=1", ""]:
        assert neutralise(safe) == safe


# --- titles CSVs that are not what they claim ----------------------------------------------

def test_titles_csv_with_hostile_cells_imports_titles_verbatim(store, tmp_path):
    write_image(tmp_path / "img" / "a.png")
    write_image(tmp_path / "img" / "b.png", colour=(0, 0, 200))
    cafe = store.create_category("Café")
    titles = tmp_path / "titles.csv"
    with open(titles, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "title", "category"])
        writer.writerow(["img/a.png", "=HYPERLINK(\"http://x\")\nsecond line", "Cafe\u0301"])
        writer.writerow(["img/b.png", "\u202eevil \"quoted\", long " + "y" * 100_000, ""])
    report, problems = import_with_titles(store, [tmp_path / "img"], titles)
    assert problems == []
    by_title = {it.title[:10]: it for it in store.items(report.added).values()}
    assert set(by_title) == {"=HYPERLINK", "\u202eevil \"quo"}
    assert len(by_title["\u202eevil \"quo"].title) > 100_000
    assert store.labels() == {by_title["=HYPERLINK"].id: cafe}


@pytest.mark.parametrize("content,message", [
    ("path,title\na.png,caf\xe9\n".encode("latin-1"), "not UTF-8"),
    (b"path,title\na.png,ok\nb.png," + b"y" * 200_000 + b"\n", "near line 3: field larger than field limit"),
    (b"name,title\na.png,x\n", "first row"),
])
def test_broken_titles_csvs_raise_a_value_error_that_says_what_to_do(tmp_path, content, message):
    path = tmp_path / "titles.csv"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message):
        read_titles_csv(path)
