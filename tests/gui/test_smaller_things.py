"""The smaller things users hit: tooltips in words, an empty catalog that says what to do, undoable
titles, a small drag badge, method tooltips."""
from __future__ import annotations

from pathlib import Path

import pytest
from PIL import features
from PySide6.QtCore import QEvent, QPoint, Qt
from PySide6.QtGui import QHelpEvent
from PySide6.QtWidgets import QApplication, QToolTip

from protoshelf.core.store import Store
from protoshelf.gui.catalog_view import percent
from protoshelf.gui import catalog_view
from protoshelf.gui.catalog_view import EMPTY_CATALOG
from protoshelf.gui.drops import dropped_item_ids
from protoshelf.gui.preview import PreviewDialog, load_preview
from tests.gui.conftest import select_rows, wait_idle
from tests.gui.test_main_window import label_examples


def test_an_unassigned_badge_says_what_its_percentage_is_of(qtbot, open_window, fake_catalog):
    path, truth, categories = fake_catalog
    window = open_window(path)
    session = window.session
    label_examples(qtbot, window, truth, categories)
    window.controls.threshold.setValue(100)
    model, view = window.view.model(), window.view
    row = next(r for r in range(model.rowCount()) if model.item_id(r) not in session.labels)
    item_id = model.item_id(row)
    best, score = model.scores_of(item_id)[0]
    name = session.category(best).name
    point = view.visualRect(model.index(row)).center()
    QApplication.sendEvent(view.viewport(), QHelpEvent(QEvent.Type.ToolTip, point, view.viewport().mapToGlobal(point)))
    assert QToolTip.text().endswith(f"Unassigned · closest {name} {percent(score)}")
    dialog = PreviewDialog(session, item_id, window)
    qtbot.addWidget(dialog)
    assert dialog.prediction.text() == f"Unassigned · closest {name} {percent(score)}"


def test_an_empty_catalog_says_how_to_fill_it(qtbot, open_window, tmp_path):
    window = open_window(tmp_path / "empty.sqlite")
    wait_idle(qtbot, window.session)
    assert window.view.empty_text == EMPTY_CATALOG
    image = window.view.viewport().grab().toImage()
    background = image.pixelColor(2, 2)
    inked = sum(image.pixelColor(x, y) != background
                for x in range(0, image.width(), 3) for y in range(0, image.height(), 3))
    assert inked > 50  # the hint is painted


def test_title_edits_in_the_preview_are_undoable(qtbot, open_window, fake_catalog):
    path, *_ = fake_catalog
    window = open_window(path)
    session = window.session
    wait_idle(qtbot, session)
    old = session.model.item_info(3).title
    dialog = PreviewDialog(session, 3, window)
    qtbot.addWidget(dialog)
    dialog.title.clear()
    qtbot.keyClicks(dialog.title, "Blue kettle")
    qtbot.keyClick(dialog.title, Qt.Key.Key_Return)
    wait_idle(qtbot, session)
    assert session.model.item_info(3).title == "Blue kettle" == Store(path).items([3])[3].title
    window.undo_action.trigger()
    wait_idle(qtbot, session)
    assert session.model.item_info(3).title == old == Store(path).items([3])[3].title


def test_dragging_items_shows_a_small_count_badge(qtbot, open_window, fake_catalog, monkeypatch):
    path, *_ = fake_catalog
    window = open_window(path)
    wait_idle(qtbot, window.session)
    drags = []

    class RecordingDrag(catalog_view.QDrag):
        def exec(self, *args):
            drags.append((self.pixmap(), dropped_item_ids(self.mimeData(), window.session.store.path)))
            return Qt.DropAction.CopyAction

    monkeypatch.setattr(catalog_view, "QDrag", RecordingDrag)
    select_rows(window, [0, 1, 2])
    window.view.startDrag(Qt.DropAction.CopyAction)
    (pixmap, ids), = drags
    assert ids == window.view.selected_ids()
    assert pixmap.width() < 120 and pixmap.height() <= 24  # not a card hiding the category list


def test_every_method_has_a_plain_words_tooltip(qtbot, open_window, fake_catalog):
    path, *_ = fake_catalog
    window = open_window(path)
    qtbot.waitUntil(lambda: window.controls.method.isEnabled(), timeout=20_000)
    combo = window.controls.method
    tips = [combo.itemData(i, Qt.ItemDataRole.ToolTipRole) for i in range(combo.count())]
    assert combo.count() > 3 and all(tips)
    assert combo.toolTip() == window.session.model_info.descriptions[window.session.method]


def test_each_running_task_has_its_own_status_line(qtbot, open_window, fake_catalog):
    import threading

    from protoshelf.gui.workers import TaskKind

    path, *_ = fake_catalog
    window = open_window(path)
    session = window.session
    wait_idle(qtbot, session)
    gate = threading.Event()
    importing = session.jobs.run("Importing", lambda context, progress: gate.wait(10), kind=TaskKind.IMPORT)
    exporting = session.live.run("Exporting", lambda context, progress: gate.wait(10), kind=TaskKind.EXPORT)
    status = window.task_status
    qtbot.waitUntil(lambda: len(status.rows) == 2, timeout=10_000)
    assert sorted(row.label.text() for row in status.rows.values()) == ["Exporting…", "Importing…"]
    status.rows[exporting].cancel_button.click()
    assert exporting.cancel_requested and not importing.cancel_requested
    gate.set()
    wait_idle(qtbot, session)
    assert not status.rows and not status.isVisible()


def test_try_an_image_shows_predictions_without_importing_it(qtbot, open_window, tmp_path, extractor):
    from protoshelf.core.embedding import embed_catalog
    from tests.conftest import write_image
    from tests.gui.test_main_window import drop, file_mime
    from protoshelf.core.importer import import_images

    path = tmp_path / "real.sqlite"
    reds = [write_image(tmp_path / f"red{i}.png", (200 + i * 10, 20, 20)) for i in range(3)]
    blues = [write_image(tmp_path / f"blue{i}.png", (20, 20, 200 + i * 10)) for i in range(3)]
    with Store(path) as store:
        red, blue = store.create_category("Red"), store.create_category("Blue")
        store.set_labels(import_images(store, reds).item_ids, red)
        store.set_labels(import_images(store, blues).item_ids, blue)
        embed_catalog(store, device="cpu", extractor=extractor)
    window = open_window(path, extractor=extractor)
    session = window.session
    wait_idle(qtbot, session)
    probe = write_image(tmp_path / "probe.png", (240, 30, 30))
    with qtbot.waitSignal(session.image_tried, timeout=60_000) as tried:
        drop(window.try_image, QPoint(10, 10), file_mime(probe))
    assert tried.args[0][0][0] == red
    assert "Red" in window.try_image.result.text().splitlines()[0]
    if features.check("avif"):  # Qt reads no AVIF here: Pillow decodes it for the pane, as for the catalog
        from PIL import Image

        Image.new("RGB", (90, 60), (20, 20, 230)).save(tmp_path / "probe.avif")
        with qtbot.waitSignal(session.image_tried, timeout=60_000) as tried:
            drop(window.try_image, QPoint(10, 10), file_mime(tmp_path / "probe.avif"))
        assert tried.args[0][0][0] == blue and not window.try_image.picture.pixmap().isNull()
    assert Store(path).item_count() == 6


@pytest.mark.skipif(not features.check("avif"), reason="Pillow without libavif")
def test_the_preview_shows_an_avif_original_that_qt_cannot_read(qtbot, tmp_path):
    from PIL import Image

    Image.new("RGB", (600, 300), (200, 30, 30)).save(tmp_path / "shoe.avif")
    image = load_preview(str(tmp_path / "shoe.avif"), thumbnail=None, side=120)
    assert (image.width(), image.height()) == (120, 60)
    assert image.pixelColor(60, 30).red() > 150 and image.pixelColor(60, 30).blue() < 100


def test_the_preview_decodes_the_original_off_the_gui_thread(qtbot, tmp_path):
    """The original was decoded while the dialog was built: a large picture held the window for a
    second."""
    from PIL import Image
    from PySide6.QtCore import QThread

    from protoshelf.core.importer import import_images
    from protoshelf.gui import preview
    from protoshelf.gui.session import CatalogSession

    Image.new("RGB", (1600, 800), (200, 30, 30)).save(tmp_path / "big.png")
    path = tmp_path / "catalog.sqlite"
    with Store(path) as store:
        (item_id,) = import_images(store, [str(tmp_path / "big.png")]).item_ids
    decoded_on_the_gui_thread = []
    load = preview.load_preview

    def recorded(*args, **kwargs):
        decoded_on_the_gui_thread.append(QThread.currentThread() is QApplication.instance().thread())
        return load(*args, **kwargs)

    session = CatalogSession(path, embed_titles=False)
    try:
        preview.load_preview = recorded
        dialog = PreviewDialog(session, item_id)
        qtbot.addWidget(dialog)
        assert not dialog.original_shown and dialog.image.pixmap().width() == preview.PREVIEW_SIDE // 2  # the thumbnail
        qtbot.waitUntil(lambda: dialog.original_shown, timeout=20_000)
        assert dialog.image.pixmap().width() == preview.PREVIEW_SIDE and decoded_on_the_gui_thread == [False]
        assert preview._originals().pool.waitForDone(5_000)
    finally:
        preview.load_preview = load
        session.close()


def test_the_preview_never_opens_a_named_pipe_put_where_a_picture_was(tmp_path):
    """Opening a pipe for reading waits for a writer: the preview's decode hung for good."""
    import os
    import subprocess
    import threading
    import time

    from protoshelf.gui.preview import load_preview

    pipe = tmp_path / "shoe.png"
    os.mkfifo(pipe)
    # Qt's open holds the GIL while it waits: another process lets a stuck reader go, so that a
    # regression fails here instead of hanging the test run
    writer = subprocess.Popen(["sh", "-c", f"for i in 1 2 3 4; do sleep 3; : > '{pipe}'; done"])
    shown = []
    try:
        started = time.monotonic()
        reader = threading.Thread(target=lambda: shown.append(load_preview(str(pipe), thumbnail=None)), daemon=True)
        reader.start()
        reader.join(20)
        assert shown and shown[0].isNull() and time.monotonic() - started < 2
    finally:
        writer.kill()


def jpeg_bytes(colour, size=(60, 40)) -> bytes:
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "JPEG")
    return out.getvalue()


def test_the_preview_reads_originals_only_as_the_catalog_does(tmp_path):
    """Qt's reader went around the catalog's guards: it drew an SVG named .png (the catalog reads
    no SVG), showed a cut-off JPEG with a grey lower half, and read a 4 GB file of zeros after a
    JPEG marker for 15 s, holding the window. Each now shows the stored thumbnail."""
    from protoshelf.core.images import MAX_FILE_BYTES

    thumbnail = jpeg_bytes((30, 160, 40))
    svg = tmp_path / "shoe.png"
    svg.write_text('<svg xmlns="http://www.w3.org/2000/svg" width="300" height="300">'
                   '<rect width="300" height="300" fill="red"/></svg>')
    cut = tmp_path / "cut.jpg"
    whole = jpeg_bytes((200, 30, 30), (400, 400))
    cut.write_bytes(whole[: len(whole) // 2])
    zeros = tmp_path / "zeros.jpg"
    with zeros.open("wb") as handle:
        handle.write(b"\xff\xd8\xff\xe0")
        handle.truncate(MAX_FILE_BYTES + 1)  # sparse: no disk taken
    for path in (svg, cut, zeros):
        image = load_preview(str(path), thumbnail, side=120)
        assert (image.width(), image.height()) == (60, 40), path.name
        assert image.pixelColor(30, 20).green() > 120 and image.pixelColor(30, 20).red() < 90, path.name


def preview_of_a_picture(tmp_path, colour=(200, 30, 30), name="shoe.png"):
    """A catalog of one real picture and a session on it."""
    from PIL import Image

    from protoshelf.core.importer import import_images
    from protoshelf.gui.session import CatalogSession

    Image.new("RGB", (800, 400), colour).save(tmp_path / name)
    path = tmp_path / "catalog.sqlite"
    with Store(path) as store:
        (item_id,) = import_images(store, [str(tmp_path / name)]).item_ids
    return CatalogSession(path, embed_titles=False), item_id


def test_a_failing_decode_on_the_preview_thread_keeps_the_thumbnail(qtbot, tmp_path, monkeypatch):
    """An unreadable folder made the decode raise on the worker thread; the app's error dialog,
    opened there, crashed the application."""
    import sys

    from protoshelf.gui import preview

    session, item_id = preview_of_a_picture(tmp_path)
    escaped = []
    monkeypatch.setattr(sys, "excepthook", lambda *exc_info: escaped.append(exc_info))

    def unreadable(path, thumbnail, side):
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(preview, "load_preview", unreadable)
    try:
        with qtbot.waitSignal(preview._originals().loaded, timeout=10_000):
            dialog = PreviewDialog(session, item_id)
            qtbot.addWidget(dialog)
        assert preview._originals().pool.waitForDone(5_000)  # the job ends after its signal
        assert not dialog.original_shown and dialog.image.pixmap().width() == preview.PREVIEW_SIDE // 2
        assert escaped == []
    finally:
        session.close()


def test_a_closed_previews_original_is_not_decoded(qtbot, tmp_path, monkeypatch):
    """The one worker decoded the original of every preview opened, closed or not: the preview
    still open waited behind them (4.4 s after 29 closed ones)."""
    import threading

    from protoshelf.gui import preview

    session, item_id = preview_of_a_picture(tmp_path)
    decoded, gate = [], threading.Event()
    load = preview.load_preview

    def gated(path, thumbnail, side):
        gate.wait(10)
        decoded.append(threading.get_ident())
        return load(path, thumbnail, side)

    monkeypatch.setattr(preview, "load_preview", gated)
    try:
        first = PreviewDialog(session, item_id)  # its decode runs, held at the gate
        closed = [PreviewDialog(session, item_id) for _ in range(3)]
        last = PreviewDialog(session, item_id)
        for dialog in (first, *closed, last):
            qtbot.addWidget(dialog)
            dialog.show()
        for dialog in closed:
            dialog.close()
        gate.set()
        qtbot.waitUntil(lambda: last.original_shown, timeout=10_000)
        assert preview._originals().pool.waitForDone(5_000)  # the job ends after its signal
        assert first.original_shown and len(decoded) == 2 and not any(d.original_shown for d in closed)
    finally:
        session.close()


def test_previews_opened_from_the_quality_window_are_freed_when_closed(qtbot, open_window, fake_catalog):
    """They were kept, hidden, as long as the window lived: 2 MB each."""
    from protoshelf.gui import preview
    from protoshelf.gui.preview import PreviewDialog as Preview

    path, *_ = fake_catalog
    window = open_window(path)
    wait_idle(qtbot, window.session)
    quality = window.open_quality()
    quality.item_activated.emit(3)
    (dialog,) = window.findChildren(Preview)
    dialog.close()
    qtbot.waitUntil(lambda: not window.findChildren(Preview), timeout=5_000)
    quality.close()
    assert preview._originals().pool.waitForDone(5_000)


def test_the_window_is_usable_before_the_model_has_loaded(qtbot, fake_catalog):
    from protoshelf.gui.main_window import MainWindow
    from protoshelf.gui.session import CatalogSession

    path, *_ = fake_catalog
    session = CatalogSession(path, embed_titles=False)
    window = MainWindow(session)
    qtbot.addWidget(window)
    window.show()
    session.start()
    assert window.view.model().rowCount() == 90  # the grid, from the catalog, at once
    assert "Loading the model in the background" in window.statusBar().currentMessage()
    assert not window.controls.method.isEnabled()
    with qtbot.waitSignal(session.model_loaded, timeout=120_000):
        pass
    assert window.controls.method.isEnabled() and window.controls.method.count() > 3
    assert "Model loaded" in window.statusBar().currentMessage()
    wait_idle(qtbot, session)
    window.close()


def test_a_long_name_is_cut_at_its_end_never_its_percentage(qtbot):
    from PySide6.QtGui import QFont, QFontMetrics

    from protoshelf.gui.catalog_view import CELL, badge_text

    metrics = QFontMetrics(QFont())
    text = badge_text(metrics, "Clothing & accessories for the whole family", " 87%", CELL.width() - 24)
    assert text.startswith("Clothing") and text.endswith("… 87%")
    assert metrics.horizontalAdvance(text) <= CELL.width() - 24


def test_the_rename_dialog_is_wide_enough_for_its_title(qtbot, open_window, fake_catalog, monkeypatch):
    from PySide6.QtWidgets import QInputDialog

    path, truth, (red, green, blue) = fake_catalog
    window = open_window(path)
    seen = []

    def answer(dialog):
        seen.append((dialog.windowTitle(), dialog.minimumWidth(), dialog.fontMetrics().horizontalAdvance(dialog.windowTitle())))
        dialog.setTextValue("Crimson")
        return QInputDialog.DialogCode.Accepted

    monkeypatch.setattr(QInputDialog, "exec", answer)
    window.panel.list.row_for(red).setSelected(True)
    window.panel.rename_button.click()
    (title, width, needed), = seen
    assert title == "Rename category Red" and width > needed + 100
    wait_idle(qtbot, window.session)
    assert window.session.category(red).name == "Crimson"


def test_an_exception_on_a_worker_thread_is_shown_on_the_gui_thread(qtbot, monkeypatch):
    """The error dialog was built on the thread that raised: off the GUI thread, that crashed the app."""
    import sys
    import threading

    from PySide6.QtWidgets import QMessageBox

    from protoshelf.gui.app import UncaughtDialogs

    app = QApplication.instance()
    shown = []
    monkeypatch.setattr(QMessageBox, "exec", lambda box: shown.append((box.text(), threading.current_thread())))
    dialogs = UncaughtDialogs(app)

    def fail() -> None:
        try:
            raise RuntimeError("the disk went away")
        except RuntimeError:
            dialogs.report(*sys.exc_info())

    try:
        worker = threading.Thread(target=fail)
        worker.start()
        worker.join()
        qtbot.waitUntil(lambda: bool(shown), timeout=5_000)
        assert len(shown) == 1 and "the disk went away" in shown[0][0]
        assert shown[0][1] is threading.main_thread()
    finally:
        dialogs.setParent(None)


def test_the_preview_decodes_a_jpeg_no_larger_than_its_box_takes(tmp_path):
    """Decoded as for the model's square, a 1200x800 JPEG was read whole to show 420 px wide."""
    from PIL import Image

    from protoshelf.core.images import open_image

    Image.new("RGB", (1200, 800), (200, 30, 30)).save(tmp_path / "wide.jpg")
    assert open_image(tmp_path / "wide.jpg", box=420).size == (600, 400)  # the smallest draft scale still wider than 420
    assert open_image(tmp_path / "wide.jpg", min_side=420).size == (1200, 800)  # the model's rule: 420 px high
    image = load_preview(str(tmp_path / "wide.jpg"), None, side=420)
    assert (image.width(), image.height()) == (420, 280)
