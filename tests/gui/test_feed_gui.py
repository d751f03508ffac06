"""The app's side of product feeds: File ▸ Import product feed…, the export format, the preview."""
from __future__ import annotations

import csv
import shutil

from PySide6.QtGui import QAction
from PySide6.QtWidgets import QFileDialog, QLabel, QMessageBox

from protoshelf.gui.export_dialog import ExportDialog
from protoshelf.gui.preview import PreviewDialog
from tests.conftest import raw_sql
from tests.gui.conftest import wait_idle
from tests.test_feed_cli import EXAMPLE


def test_import_feed_from_the_menu_then_export_for_google(qtbot, open_window, extractor, tmp_path, monkeypatch):
    shutil.copytree(EXAMPLE.parent.parent, tmp_path, dirs_exist_ok=True, ignore=shutil.ignore_patterns("*.md"))
    feed = tmp_path / "example_feed" / "products.csv"
    with feed.open("a", encoding="utf-8") as handle:
        handle.write("SKU-9999,Lost,../demo/images/no_such.png,\n")
    window = open_window(tmp_path / "c.sqlite", extractor=extractor)
    session = window.session
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *args, **kwargs: (str(feed), ""))
    action = next(a for a in window.findChildren(QAction) if a.text() == "Import product f&eed…")
    with qtbot.waitSignal(window.feed_importer.finished, timeout=30_000) as finished:
        action.trigger()
    report = finished.args[0]
    assert report.summary() == "10 added, 0 updated, 0 unchanged, 1 failed"
    assert session.model.rowCount() == 10
    assert {c.name: c.examples for c in session.categories} == {"Fruit": 3, "Music": 3}
    boxes = window.findChildren(QMessageBox)
    assert any("line 12 (product SKU-9999): file not found" in box.detailedText() for box in boxes)
    wait_idle(qtbot, session, 60_000)

    dialog = ExportDialog(session, tmp_path / "supplemental.csv", window)
    qtbot.addWidget(dialog)
    assert not dialog.include_unassigned.isEnabled()
    dialog.excel.setChecked(True)
    dialog.format.setCurrentIndex(dialog.format.findData("google"))
    assert dialog.include_unassigned.isEnabled() and not dialog.top.isEnabled() and not dialog.excel.isEnabled()
    assert not dialog.request().excel_bom
    request = dialog.request()
    assert (request.format, request.include_unassigned) == ("google", False)
    with raw_sql(session.path) as db:  # an id a spreadsheet would read as a formula
        db.execute("UPDATE items SET product_id = '-SKU-1001' WHERE product_id = 'SKU-1001'")
    problems = []
    session.problem.connect(lambda title, details: problems.append((title, details)))
    with qtbot.waitSignal(session.export_finished, timeout=30_000):
        session.export(request)
    with open(request.path, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["id", "product_type"]
    assert {r[0] for r in rows[1:]} >= {"-SKU-1001", "SKU-2001"}  # labelled ones at least; the rest as predicted
    assert [title for title, details in problems if "(1) are written exactly" in details] == [
        f"Wrote {len(rows) - 1} rows to {request.path}: upload it as it is"]
    assert any(title.endswith("upload it as it is") for title in (box.text() for box in window.findChildren(QMessageBox)))
    wait_idle(qtbot, session, 60_000)


def test_preview_shows_product_id_and_image_url(qtbot, open_window, fake_catalog):
    path, _, _ = fake_catalog
    window = open_window(path)
    with raw_sql(path) as db:
        db.execute("UPDATE items SET product_id = 'SKU-42', image_url = 'https://shop.example/42.jpg' WHERE id = 1")
    dialog = PreviewDialog(window.session, 1, window)
    qtbot.addWidget(dialog)
    texts = {label.text() for label in dialog.findChildren(QLabel)}
    assert {"SKU-42", "https://shop.example/42.jpg"} <= texts
    wait_idle(qtbot, window.session)


def test_a_feed_with_new_ids_asks_and_renames(qtbot, open_window, extractor, tmp_path, monkeypatch):
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    window = open_window(tmp_path / "c.sqlite", extractor=extractor)
    importer = window.feed_importer
    with qtbot.waitSignal(importer.finished, timeout=30_000):
        importer.start(EXAMPLE)
    wait_idle(qtbot, window.session, 60_000)
    rows = list(csv.DictReader(EXAMPLE.open(encoding="utf-8")))
    renamed = tmp_path / "handles.csv"
    renamed.write_text("handle,title,image link\n" + "".join(
        f"h-{r['id']},{r['title']},{EXAMPLE.parent / r['image_link']}\n" for r in rows), encoding="utf-8")
    asked = []

    def answer() -> None:  # the question comes once the first try is refused
        box = QApplication.activeModalWidget()
        if isinstance(box, QMessageBox):
            asked.append(box.text())
            next(b for b in box.buttons() if b.text() == "Same products, new ids").click()

    poll = QTimer(interval=50, timeout=answer)
    poll.start()
    problems, notices = [], []
    window.session.problem.connect(lambda title, text: problems.append(title))
    window.session.notice.connect(notices.append)
    with qtbot.waitSignal(importer.finished, timeout=60_000) as finished:
        importer.start(renamed)
    poll.stop()
    assert problems == [] and "10 products took the feed's new ids" in notices[-1]  # done as asked: no problem
    assert len(asked) == 1 and "'h-SKU-1001' has the picture of the catalog's 'SKU-1001'" in asked[0], asked
    assert finished.args[0].summary() == "0 added, 10 updated, 0 unchanged, 0 failed"
    assert window.session.model.rowCount() == 10
    wait_idle(qtbot, window.session, 60_000)


def test_a_feed_that_cannot_be_read_says_why(qtbot, open_window, fake_catalog, tmp_path):
    path, _, _ = fake_catalog
    window = open_window(path)
    feed = tmp_path / "no_images.csv"
    feed.write_text("id,title\nA,x\n", encoding="utf-8")
    with qtbot.waitSignal(window.session.problem, timeout=30_000) as problem:
        window.feed_importer.start(feed)
    assert problem.args[0] == "The product feed could not be imported" and "no image column" in problem.args[1]
