"""CSV export: columns, formula neutralisation, scopes, atomic writes."""
from __future__ import annotations

import csv

import pytest

from core.export import export_csv, header, neutralise
from core.schema import Item


def seed(store, titles):
    with store.write() as s:
        items = [Item(path=f"/shop/{i}.png", sha256=f"{i:064x}", title=t, width=1, height=1, file_size=1)
                 for i, t in enumerate(titles)]
        s.add_all(items)
        s.flush()
        return [it.id for it in items]


@pytest.mark.parametrize("cell", ["=1+1", "+SUM(A1)", "-2+3", "@cmd", "\tx", "\rx", "=HYPERLINK(\"http://x\")"])
def test_formula_cells_are_neutralised(cell):
    assert neutralise(cell) == "'" + cell


@pytest.mark.parametrize("cell", ["Shoe", "a=b", "", "10% off", "'quoted"])
def test_plain_cells_are_untouched(cell):
    assert neutralise(cell) == cell


def test_export_writes_one_row_per_item_with_labels_predictions_and_top_k(store, tmp_path):
    ids = seed(store, ["Red shoe", "=cmd|' /C calc'!A0", None])
    shoes, pans = store.create_category("Shoes"), store.create_category("@Pans")
    store.set_labels([ids[0]], shoes)
    store.save_predictions("prototypes", "m", {}, ids, [shoes, pans, None], [0.9, 0.8, 0.2],
                           [[(shoes, 0.9), (pans, 0.05)], [(pans, 0.8), (shoes, 0.1)], [(shoes, 0.2), (pans, 0.1)]])
    out = tmp_path / "out.csv"
    assert export_csv(store, out, top=2) == 3
    rows = list(csv.reader(out.open(encoding="utf-8")))
    assert rows[0] == header(2)
    assert rows[1] == [str(ids[0]), "/shop/0.png", "Red shoe", "Shoes", "Shoes", "0.9000", "Shoes", "0.9000", "'@Pans", "0.0500"]
    assert rows[2][2] == "'=cmd|' /C calc'!A0" and rows[2][4] == "'@Pans"
    assert rows[3][3:6] == ["", "", "0.2000"]


def test_export_scope_and_excel_bom(store, tmp_path):
    ids = seed(store, ["a", "b", "c"])
    out = tmp_path / "some.csv"
    assert export_csv(store, out, top=1, excel_bom=True, item_ids=[ids[2], ids[0]]) == 2
    data = out.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(data.decode("utf-8-sig").splitlines()))
    assert [r[0] for r in rows[1:]] == [str(ids[0]), str(ids[2])]


def test_failed_export_leaves_no_partial_file(store, tmp_path, monkeypatch):
    seed(store, ["a", "b"])
    out = tmp_path / "keep.csv"
    out.write_text("previous export")

    def explode(*args):
        raise OSError("disk full")

    monkeypatch.setattr("core.export._format", explode)
    with pytest.raises(OSError):
        export_csv(store, out)
    assert out.read_text() == "previous export"
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".csv"] == ["keep.csv"]
