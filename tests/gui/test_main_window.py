"""The real window on real catalog files, driven as a user would: keys, drops, undo, export."""
from __future__ import annotations

import csv

import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QPoint, QSettings, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDragMoveEvent, QDropEvent
from PySide6.QtWidgets import QApplication, QFileDialog, QMessageBox

from protoshelf.core.export import header
from protoshelf.core.store import Store
from protoshelf.gui.drops import MIME_TYPE, category_mime, dropped_item_ids
from protoshelf.gui.app import App, choose_catalog
from protoshelf.gui.export_dialog import ExportDialog, ExportRequest
from protoshelf.gui.catalog_model import FILTER_UNASSIGNED, ConfidenceRole, ItemIdRole, PredictionRole
from protoshelf.gui.preview import PreviewDialog
from protoshelf.gui.problems_dialog import ProblemsDialog
from tests.conftest import write_image
from tests.gui.conftest import (
    WINDOW_BUILT, busy_dialog_ticks, examples, label_all, select_rows, start_app, two_selected, wait_idle,
)


def drop(widget, point: QPoint, mime: QMimeData) -> QDropEvent:
    """Deliver a drag as the window system does: enter, move, then drop at `point`."""
    action, button, modifier = Qt.DropAction.CopyAction, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier
    QApplication.sendEvent(widget, QDragEnterEvent(point, action, mime, button, modifier))
    QApplication.sendEvent(widget, QDragMoveEvent(point, action, mime, button, modifier))
    event = QDropEvent(point.toPointF(), action, mime, button, modifier)
    QApplication.sendEvent(widget, event)
    return event


def file_mime(*paths) -> QMimeData:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    return mime


def category_point(window, category_id) -> QPoint:
    row = window.panel.list.row_for(category_id)
    return window.panel.list.visualItemRect(row).center()


def label_examples(qtbot, window, truth, categories) -> dict[int, int]:
    session = window.session
    labels = {i: categories[k] for k in range(3) for i in examples(truth, k)}
    label_all(qtbot, session, labels)
    return labels


def test_a_fit_in_the_worker_updates_the_grid(qtbot, open_window, fake_catalog):
    path, truth, categories = fake_catalog
    window = open_window(path)
    session = window.session
    wait_idle(qtbot, session)
    assert session.predictions is None
    assert window.view.model().index(0).data(PredictionRole) == -2

    label_examples(qtbot, window, truth, categories)
    model = window.view.model()
    predicted = [model.index(r).data(PredictionRole) for r in range(model.rowCount())]
    assert predicted == [categories[k] for k in truth]
    assert Store(path).labels() == session.labels
    counts = {window.panel.list.row_for(c).text(1): window.panel.list.row_for(c).text(3) for c in categories}
    assert counts == {"Red": str((truth == 0).sum() - 3), "Green": str((truth == 1).sum() - 3),
                      "Blue": str((truth == 2).sum() - 3)}


def test_number_keys_label_and_zero_unlabels(qtbot, open_window, fake_catalog):
    path, truth, categories = fake_catalog
    window, ids = two_selected(qtbot, open_window(path))
    session = window.session
    qtbot.keyClick(window.view, Qt.Key.Key_2)
    assert {i: session.labels.get(i) for i in ids} == dict.fromkeys(ids, categories[1])
    select_rows(window, [1])
    qtbot.keyClick(window.view, Qt.Key.Key_0)
    assert session.labels == {ids[0]: categories[1]}
    select_rows(window, [0])
    qtbot.keyClick(window.view, Qt.Key.Key_Backspace)
    assert session.labels == {}
    qtbot.keyClick(window.view, Qt.Key.Key_9)
    assert session.labels == {}
    wait_idle(qtbot, session)
    assert Store(path).labels() == {}


def test_undo_and_redo_labels_and_category_deletion(qtbot, open_window, fake_catalog):
    path, truth, categories = fake_catalog
    window = open_window(path)
    session = window.session
    labels = label_examples(qtbot, window, truth, categories)
    stack = session.undo_stack
    with Store(path) as store:
        stack.undo()
        wait_idle(qtbot, session)
        assert store.labels() == {i: c for i, c in labels.items() if c != categories[2]}
        stack.redo()
        wait_idle(qtbot, session)
        assert store.labels() == labels

        session.delete_category(categories[0])
        wait_idle(qtbot, session)
        assert [c.name for c in store.categories()] == ["Green", "Blue"]
        assert categories[0] not in store.labels().values()
        assert window.panel.list.row_for(categories[0]) is None
        model = window.view.model()
        assert categories[0] not in {model.index(r).data(PredictionRole) for r in range(model.rowCount())}

        stack.undo()
        wait_idle(qtbot, session)
        assert [c.name for c in store.categories()] == ["Red", "Green", "Blue"]
        assert store.labels() == labels
        assert session.labels == labels
        predicted = [model.index(r).data(PredictionRole) for r in range(model.rowCount())]
        assert predicted == [categories[k] for k in truth]


def test_category_create_rename_recolour_are_undoable(qtbot, open_window, fake_catalog):
    path, truth, categories = fake_catalog
    window = open_window(path)
    session = window.session
    session.create_category("Kitchen")
    wait_idle(qtbot, session)
    kitchen = session.categories[-1]
    assert kitchen.name == "Kitchen" and window.panel.list.row_for(kitchen.id).text(0) == "4"
    session.rename_category(kitchen.id, "Cookware")
    session.recolour_category(kitchen.id, "#123456")
    wait_idle(qtbot, session)
    assert (session.category(kitchen.id).name, session.category(kitchen.id).colour) == ("Cookware", "#123456")
    with pytest.raises(ValueError, match="already exists"):
        session.rename_category(kitchen.id, "Red")
    session.undo_stack.undo()
    session.undo_stack.undo()
    wait_idle(qtbot, session)
    assert (session.category(kitchen.id).name, session.category(kitchen.id).colour) == ("Kitchen", kitchen.colour)
    session.undo_stack.undo()
    wait_idle(qtbot, session)
    assert [c.name for c in session.categories] == ["Red", "Green", "Blue"]
    session.undo_stack.redo()
    wait_idle(qtbot, session)
    assert session.categories[-1].id == kitchen.id


def test_dragging_grid_items_onto_a_category_labels_them(qtbot, open_window, fake_catalog):
    path, truth, categories = fake_catalog
    window = open_window(path)
    session = window.session
    wait_idle(qtbot, session)
    model = window.view.model()
    rows = [3, 4, 5]
    mime = model.mimeData([model.index(r) for r in rows])
    event = drop(window.panel.list.viewport(), category_point(window, categories[2]), mime)
    assert event.isAccepted()
    ids = model.item_ids(rows)
    assert session.labels == dict.fromkeys(ids, categories[2])
    drop(window.panel.list.viewport(), category_point(window, None), model.mimeData([model.index(3)]))
    assert session.labels == dict.fromkeys(ids[1:], categories[2])
    wait_idle(qtbot, session)
    assert Store(path).labels() == session.labels
    assert window.panel.list.row_for(categories[2]).text(2) == "2"


def test_dropping_files_on_a_category_imports_labels_embeds_and_classifies(qtbot, open_window, tmp_path, extractor):
    path = tmp_path / "catalog.sqlite"
    with Store(path) as store:
        red = store.create_category("Red")
    folder = tmp_path / "drop"
    files = [write_image(folder / f"red{i}.png", (220, 30, 30), size=(48, 48)) for i in range(3)]
    (folder / "notes.png").write_text("not an image")
    window = open_window(path, extractor=extractor)
    session = window.session
    wait_idle(qtbot, session)
    with qtbot.waitSignal(session.predictions_changed, timeout=60_000):
        event = drop(window.panel.list.viewport(), category_point(window, red), file_mime(*files, folder / "notes.png"))
    assert event.isAccepted()
    wait_idle(qtbot, session, timeout=60_000)
    with Store(path) as store:
        assert store.item_count() == 3
        assert sorted(store.labels()) == sorted(store.item_ids().tolist())
        assert set(store.labels().values()) == {red}
        assert store.items_without_embedding(session.backbone) == []
    assert window.panel.list.row_for(red).text(2) == "3"
    dialog = window.import_problems
    assert isinstance(dialog, ProblemsDialog)
    ((skipped, reason),) = dialog.rows()
    assert skipped.endswith("notes.png") and "not an image" in reason

    more = write_image(folder / "more" / "unlabelled.png", (30, 30, 220), size=(48, 48))
    with qtbot.waitSignal(session.predictions_changed, timeout=60_000):
        assert drop(window.view.viewport(), QPoint(50, 50), file_mime(more.parent)).isAccepted()
    wait_idle(qtbot, session, timeout=60_000)
    assert Store(path).item_count() == 4 and len(session.labels) == 3
    model = window.view.model()
    new_row = model.row_of(max(model.all_ids()))
    assert model.index(new_row).data(ConfidenceRole) is not None


@pytest.mark.slow
def test_cancel_stops_a_long_embedding_and_the_app_carries_on(qtbot, open_window, tmp_path, extractor, monkeypatch):
    import threading

    path = tmp_path / "catalog.sqlite"
    images = [write_image(tmp_path / "many" / f"{i:03d}.png", (i, 255 - i, 128), size=(24, 24)) for i in range(160)]
    from protoshelf.core.importer import import_images

    with Store(path) as store:
        import_images(store, images)
    clicked, batches = threading.Event(), []
    real_call = type(extractor).__call__

    def after_the_first_batch_wait_for_the_click(self, images):
        if batches:  # so the embedding cannot finish before the click, however fast the machine
            clicked.wait(60)
        batches.append(len(images))
        return real_call(self, images)

    monkeypatch.setattr(type(extractor), "__call__", after_the_first_batch_wait_for_the_click)
    window = open_window(path, extractor=extractor)
    session = window.session
    embed_task = next(t for t in session.jobs.pending if t.kind == "embed")
    with qtbot.waitSignal(embed_task.progressed, timeout=60_000, check_params_cb=lambda done, total: done > 0):
        pass
    assert window.task_status.isVisible() and window.task_status.cancel_button.isEnabled()
    with qtbot.waitSignal(embed_task.finished, timeout=60_000):
        window.task_status.cancel_button.click()
        clicked.set()
    assert embed_task.outcome == "cancelled"
    assert len(batches) == 2  # the batch under way when the click came, and none after it
    wait_idle(qtbot, session)
    with Store(path) as store:
        left = len(store.items_without_embedding(session.backbone))
    assert 160 - sum(batches) <= left < 160
    assert not window.task_status.isVisible()
    assert "cancelled" in window.statusBar().currentMessage()
    session.create_category("Still works")
    wait_idle(qtbot, session)
    assert session.categories[-1].name == "Still works"


def test_export_writes_the_expected_csv(qtbot, open_window, fake_catalog, tmp_path):
    path, truth, categories = fake_catalog
    window = open_window(path)
    session = window.session
    labels = label_examples(qtbot, window, truth, categories)
    out = tmp_path / "green.csv"
    green_ids = session.model.effective_ids(categories[1])
    with qtbot.waitSignal(session.export_finished, timeout=20_000):
        session.export(ExportRequest(out, top=2, excel_bom=False, item_ids=green_ids))
    with open(out, newline="", encoding="utf-8") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == header(2)
    assert [int(r[1]) for r in rows[1:]] == sorted(green_ids.tolist())
    for row in rows[1:]:
        item_id = int(row[1])
        assert row[4] == ("Green" if item_id in labels else "")
        assert row[5] == "Green" and row[7] == "Green"
        assert float(row[6]) == pytest.approx(float(row[8]), abs=1e-3)
    assert Store(path).categories()[1].predicted == (truth == 1).sum() - 3


def test_threshold_slider_relabels_unassigned_live(qtbot, open_window, fake_catalog):
    path, truth, categories = fake_catalog
    window = open_window(path)
    session = window.session
    label_examples(qtbot, window, truth, categories)
    window.show_filter(FILTER_UNASSIGNED)
    assert window.view.model().rowCount() == 0
    window.controls.threshold.setValue(100)
    assert not session.live.busy
    model = window.view.model()
    assert model.rowCount() == 90 - 9
    assert {model.index(r).data(PredictionRole) for r in range(model.rowCount())} == {-1}
    assert window.panel.list.row_for(None).text(3) == "81"


def test_preview_shows_scores_and_edits_the_title(qtbot, open_window, fake_catalog):
    path, truth, categories = fake_catalog
    window = open_window(path)
    session = window.session
    label_examples(qtbot, window, truth, categories)
    index = window.view.model().index(0)
    dialog = window.open_preview(index)
    assert isinstance(dialog, PreviewDialog)
    assert dialog.scores.rowCount() == 4
    assert dialog.scores.item(0, 0).text() == ["1 · Red", "2 · Green", "3 · Blue"][truth[0]]
    assert dialog.scores.item(3, 0).text() == "None of these"
    dialog.title.setText("Crimson kettle")
    dialog.close()
    wait_idle(qtbot, session)
    item_id = index.data(ItemIdRole)
    assert Store(path).items([item_id])[item_id].title == "Crimson kettle"
    assert window.view.model().index(0).data() == "Crimson kettle"
    window.search.setText("crimson")
    assert window.view.model().visible_ids().tolist() == [item_id]


def test_window_remembers_geometry_and_last_catalog(qtbot, open_window, fake_catalog, tmp_path):
    path, *_ = fake_catalog
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    window = open_window(path, settings)
    window.resize(1150, 560)
    size = window.size()
    window.close()
    assert choose_catalog(None, False, settings) == path.resolve()
    assert choose_catalog(tmp_path / "other.sqlite", False, settings) == tmp_path / "other.sqlite"
    again = open_window(path, settings)
    assert again.height() == size.height() == 560  # the offscreen screen is narrower than the window


def test_an_item_that_leaves_the_view_leaves_nothing_selected(qtbot, open_window, fake_catalog):
    """Labelling an Unassigned item moves it out of the view; the next key must not silently label
    the item that slid into its place. An arrow key picks that place up, visibly."""
    path, truth, categories = fake_catalog
    window = open_window(path)
    session = window.session
    label_examples(qtbot, window, truth, categories)
    window.controls.threshold.setValue(100)
    window.show_filter(FILTER_UNASSIGNED)
    model = window.view.model()
    first, second = model.item_id(0), model.item_id(1)
    window.view.setFocus()
    select_rows(window, [0])
    qtbot.keyClick(window.view, Qt.Key.Key_1)
    assert model.item_id(0) == second
    assert window.view.selected_ids() == []
    assert "left this view; nothing is selected" in window.statusBar().currentMessage()
    qtbot.keyClick(window.view, Qt.Key.Key_2)
    assert second not in session.labels
    assert "Nothing is selected" in window.statusBar().currentMessage()
    qtbot.keyClick(window.view, Qt.Key.Key_Right)
    assert window.view.selected_ids() == [second]
    wait_idle(qtbot, session)
    assert session.labels[first] == categories[0]
    np.testing.assert_array_equal(np.isin(model.visible_ids(), list(session.labels)), False)


@pytest.mark.parametrize("failure", [OSError("disk full"), RuntimeError("worker crashed")])
def test_the_app_survives_a_failed_import_and_a_failed_fit(qtbot, open_window, fake_catalog, monkeypatch, failure):
    path, truth, categories = fake_catalog
    window = open_window(path)
    session = window.session
    wait_idle(qtbot, session)
    problems = []
    session.problem.connect(lambda title, details: problems.append((title, details)))

    def broken(*args, **kwargs):
        raise failure

    monkeypatch.setattr("protoshelf.gui.jobs.import_files", broken)
    monkeypatch.setattr("protoshelf.gui.jobs.fit", broken)
    session.import_paths(["/nowhere"])
    session.label(examples(truth, 0), categories[0])
    wait_idle(qtbot, session)
    assert [title for title, _ in problems] == ["Import failed", "Predictions could not be updated"]
    assert all(str(failure) in details for _, details in problems)
    assert window.findChildren(QMessageBox)

    monkeypatch.undo()
    with qtbot.waitSignal(session.predictions_changed, timeout=10_000):
        session.label(examples(truth, 1), categories[1])
    assert session.predictions is not None


def test_export_dialog_scopes(qtbot, open_window, fake_catalog, tmp_path):
    path, truth, categories = fake_catalog
    window = open_window(path)
    session = window.session
    label_examples(qtbot, window, truth, categories)
    window.show_filter(categories[2])
    dialog = ExportDialog(session, tmp_path / "out.csv", window)
    qtbot.addWidget(dialog)
    assert dialog.request().item_ids is None
    dialog.shown_items.setChecked(True)
    np.testing.assert_array_equal(dialog.request().item_ids, session.model.visible_ids())
    dialog.category.setCurrentIndex(1)
    request = dialog.request()
    assert dialog.one_category.isChecked()
    assert sorted(request.item_ids.tolist()) == [i + 1 for i in np.flatnonzero(truth == 1)]
    assert (request.path, request.top, request.excel_bom) == (tmp_path / "out.csv", 3, False)


def a_window_and_60_files_to_drop_on_red(qtbot, open_window, tmp_path, monkeypatch):
    """A window on a catalog with one category, Red, and a folder of 60 files that import 10 a batch."""
    from protoshelf.core import importer

    monkeypatch.setattr(importer, "BATCH_SIZE", 10)
    path = tmp_path / "catalog.sqlite"
    with Store(path) as store:
        red = store.create_category("Red")
    folder = tmp_path / "drop"
    for i in range(60):
        write_image(folder / f"red{i:03d}.png", (200, 4 * i, 30), size=(32, 32))
    window = open_window(path)
    wait_idle(qtbot, window.session)
    return window, path, red, folder


def test_files_dropped_on_a_category_and_cancelled_part_way_become_its_examples(qtbot, open_window, tmp_path,
                                                                               monkeypatch):
    """Labelling waited for the import's end: a Cancel left every file imported so far unlabelled."""
    from protoshelf.core import importer

    window, path, red, folder = a_window_and_60_files_to_drop_on_red(qtbot, open_window, tmp_path, monkeypatch)
    session = window.session
    started = importer.import_images

    def cancelled_after_two_batches(store, sources, titles=None, progress=None, workers=4, report=None):
        def cancel_later(done, total):
            if done >= 20:
                task.cancel()
            progress(done, total)
        return started(store, sources, titles, cancel_later, workers, report)

    monkeypatch.setattr(importer, "import_images", cancelled_after_two_batches)
    notices = []
    session.notice.connect(notices.append)
    drop(window.panel.list.viewport(), category_point(window, red), file_mime(folder))
    task = next(t for t in session.jobs.pending if t.kind == "import")
    wait_idle(qtbot, session, 60_000)
    with Store(path) as store:
        imported, labels = store.item_count(), store.labels()
    assert 0 < imported < 60 and labels == dict.fromkeys(labels, red) and len(labels) == imported
    assert f"Import cancelled; the {imported} files imported so far are kept, as examples of Red." in notices
    session.undo_stack.undo()  # one step, as a finished import's labels
    wait_idle(qtbot, session)
    assert Store(path).labels() == {}


def test_closing_the_window_during_an_import_onto_a_category_keeps_the_files_as_its_examples(
        qtbot, open_window, tmp_path, monkeypatch):
    """The window labelled the files once the import's result reached it; closed part way, the
    window heard of no result, and every file imported so far stayed unlabelled."""
    import threading

    from protoshelf.core import importer

    window, path, red, folder = a_window_and_60_files_to_drop_on_red(qtbot, open_window, tmp_path, monkeypatch)
    started, part_way = importer.import_images, threading.Event()

    def until_the_window_closes(store, sources, titles=None, progress=None, workers=4, report=None):
        def report_progress(done, total):
            if done >= 20:
                part_way.set()
                qtbot.waitUntil(lambda: progress.task.cancel_requested, timeout=20_000)
            progress(done, total)
        return started(store, sources, titles, report_progress, workers, report)

    monkeypatch.setattr(importer, "import_images", until_the_window_closes)
    drop(window.panel.list.viewport(), category_point(window, red), file_mime(folder))
    qtbot.waitUntil(part_way.is_set, timeout=60_000)
    window.close()
    with Store(path) as store:
        imported, labels = store.item_count(), store.labels()
    assert 0 < imported < 60 and labels == dict.fromkeys(store.item_ids().tolist(), red)


def test_undoing_a_drop_onto_a_category_puts_back_what_a_file_already_in_the_catalog_was(
        qtbot, open_window, extractor, tmp_path):
    from protoshelf.core.importer import import_images

    path = tmp_path / "catalog.sqlite"
    write_image(tmp_path / "drop" / "known.png", (200, 30, 30), size=(32, 32))
    write_image(tmp_path / "drop" / "new.png", (30, 200, 30), size=(32, 32))
    with Store(path) as store:
        red, green = store.create_category("Red"), store.create_category("Green")
        (known,) = import_images(store, [str(tmp_path / "drop" / "known.png")]).item_ids
        store.set_labels([known], green)
    window = open_window(path, extractor=extractor)
    session = window.session
    wait_idle(qtbot, session, 60_000)
    drop(window.panel.list.viewport(), category_point(window, red), file_mime(tmp_path / "drop"))
    wait_idle(qtbot, session, 60_000)
    labels = Store(path).labels()
    assert labels[known] == red and set(labels.values()) == {red} and len(labels) == 2 and session.labels == labels
    session.undo_stack.undo()
    wait_idle(qtbot, session)
    assert Store(path).labels() == {known: green} == session.labels


def test_the_window_reads_the_catalogs_items_on_a_worker(qtbot, open_window, extractor, tmp_path, monkeypatch):
    """After an import, a catch-up or a feed, the GUI thread read every item id itself: at a
    million items, a stall of a few tenths of a second each time."""
    from PySide6.QtCore import QThread

    from protoshelf.core.importer import import_images

    path = tmp_path / "catalog.sqlite"
    for i, colour in enumerate([(200, 30, 30), (30, 200, 30), (30, 30, 200)]):
        write_image(tmp_path / f"batch{i}" / f"{i}.png", colour, size=(32, 32))
    with Store(path) as store:
        import_images(store, [str(tmp_path / "batch0")])
    window = open_window(path, extractor=extractor)
    session = window.session
    wait_idle(qtbot, session, 60_000)
    read_on_the_gui_thread = []
    item_ids = Store.item_ids

    def recorded(store):
        if QThread.currentThread() is QApplication.instance().thread():
            read_on_the_gui_thread.append(store.path)
        return item_ids(store)

    monkeypatch.setattr(Store, "item_ids", recorded)
    session.import_paths([str(tmp_path / "batch1")])
    wait_idle(qtbot, session, 60_000)
    assert session.model.rowCount() == 2
    with Store(path) as cli:  # the command line adds an item meanwhile
        import_images(cli, [str(tmp_path / "batch2")])
    session.catch_up()
    wait_idle(qtbot, session, 60_000)
    assert session.model.rowCount() == 3
    session.reload()
    wait_idle(qtbot, session, 60_000)
    assert session.model.rowCount() == 3 and read_on_the_gui_thread == []


def import_onto_red_with_a_label_given_meanwhile(qtbot, open_window, fake_catalog, meanwhile=None):
    """Item 1 (Green) and a new item 2 dropped onto Red; the user labels item 1 Blue while the
    import runs, after the import job wrote Red (or does `meanwhile(session)`)."""
    from protoshelf.core.importer import ImportReport
    from protoshelf.gui import jobs

    path, truth, (red, green, blue) = fake_catalog
    window = open_window(path)
    session = window.session
    session.label([1], green)
    wait_idle(qtbot, session)
    started = session.edits  # the drop onto Red of item 1's file and a new one
    with Store(path) as job:
        before = job.set_labels([1, 2], red)
    (meanwhile or (lambda s: s.label([1], blue)))(session)
    wait_idle(qtbot, session)
    session.intake._on_imported(started, jobs.ImportResult(ImportReport(existing=[1], added=[2]), red, False, before))
    wait_idle(qtbot, session)
    return path, session, (red, green, blue)


def test_a_label_given_to_a_dropped_file_while_the_import_ran_shows_as_the_catalog_holds_it(
        qtbot, open_window, fake_catalog):
    """The user's Blue was written after the import's Red; the import's result then showed Red,
    and the window disagreed with the catalog."""
    path, session, (red, green, blue) = import_onto_red_with_a_label_given_meanwhile(qtbot, open_window, fake_catalog)
    assert {i: session.labels.get(i) for i in (1, 2)} == {1: blue, 2: red} == {i: Store(path).labels().get(i) for i in (1, 2)}


def test_undoing_an_import_leaves_the_label_given_to_one_of_its_files_meanwhile(qtbot, open_window, fake_catalog):
    """Undo of the import step put back what the file held before the import (Green), over the
    Blue the user gave it while the import ran."""
    path, session, (red, green, blue) = import_onto_red_with_a_label_given_meanwhile(qtbot, open_window, fake_catalog)
    assert session.undo_stack.undoText().startswith("Label as Red: 2 items")
    session.undo_stack.undo()
    assert {i: session.labels.get(i) for i in (1, 2)} == {1: blue, 2: None}  # at once, before it is written
    wait_idle(qtbot, session)
    assert {i: session.labels.get(i) for i in (1, 2)} == {1: blue, 2: None} == {i: Store(path).labels().get(i) for i in (1, 2)}
    with Store(path) as cli:  # another process relabels the new file before the redo, and again before its undo
        cli.set_labels([2], green)
    session.undo_stack.redo()  # item 1, left alone by the undo, is left alone by the redo too
    wait_idle(qtbot, session)
    assert {i: session.labels.get(i) for i in (1, 2)} == {1: blue, 2: red} == {i: Store(path).labels().get(i) for i in (1, 2)}
    with Store(path) as cli:
        cli.set_labels([2], green)
    session.undo_stack.undo()
    wait_idle(qtbot, session)
    assert {i: session.labels.get(i) for i in (1, 2)} == {1: blue, 2: green} == {i: Store(path).labels().get(i) for i in (1, 2)}


def test_undoing_an_import_and_the_label_given_meanwhile_leaves_what_was_there_before_both(qtbot, open_window,
                                                                                        fake_catalog):
    """The user's step is pushed before the import's (which comes when the import ends) but written
    after it, so its undo put back the import's Red, though the import was undone already."""
    path, session, (red, green, blue) = import_onto_red_with_a_label_given_meanwhile(qtbot, open_window, fake_catalog)

    def shown_and_stored():
        wait_idle(qtbot, session)
        shown = {i: session.labels.get(i) for i in (1, 2)}
        assert shown == {i: Store(path).labels().get(i) for i in (1, 2)}
        return shown

    session.undo_stack.undo()  # the import: item 1 keeps the user's Blue
    session.undo_stack.undo()  # the user's Blue
    assert shown_and_stored() == {1: green, 2: None}
    session.undo_stack.redo()
    assert shown_and_stored() == {1: blue, 2: None}
    session.undo_stack.redo()
    assert shown_and_stored() == {1: blue, 2: red}
    session.undo_stack.undo()
    session.undo_stack.undo()
    assert shown_and_stored() == {1: green, 2: None}


def undo_all(qtbot, session, path, items=(1, 2)) -> list[dict]:
    """Undo every step, waiting for each to be written; what the window shows after each (and
    the catalog holds alike)."""
    shown = []
    while session.undo_stack.canUndo():
        session.undo_stack.undo()
        wait_idle(qtbot, session)
        shown.append({i: session.labels.get(i) for i in items})
        assert shown[-1] == {i: Store(path).labels().get(i) for i in items}
    return shown


def test_undoing_an_import_and_two_labels_given_meanwhile_leaves_what_was_there_before(qtbot, open_window,
                                                                                      fake_catalog):
    """Blue, then Green, given to a file while its import onto Red ran; the first of them was
    written over the import's Red."""
    def blue_then_green(session):
        session.label([1], blue)
        wait_idle(qtbot, session)
        session.label([1], green)

    red, green, blue = fake_catalog[2]
    path, session, _ = import_onto_red_with_a_label_given_meanwhile(qtbot, open_window, fake_catalog, blue_then_green)
    assert undo_all(qtbot, session, path) == [
        {1: green, 2: None}, {1: blue, 2: None}, {1: green, 2: None}, {1: None, 2: None}]


def test_undoing_an_import_a_label_and_its_category_delete_meanwhile_leaves_what_was_there_before(
        qtbot, open_window, fake_catalog):
    def blue_then_deleted(session):
        session.label([1], blue)
        wait_idle(qtbot, session)
        session.delete_category(blue)

    red, green, blue = fake_catalog[2]
    path, session, _ = import_onto_red_with_a_label_given_meanwhile(qtbot, open_window, fake_catalog, blue_then_deleted)
    assert undo_all(qtbot, session, path) == [
        {1: None, 2: None}, {1: blue, 2: None}, {1: green, 2: None}, {1: None, 2: None}]


def test_a_file_labelled_like_its_import_meanwhile_keeps_the_users_label_through_undo_and_redo(
        qtbot, open_window, fake_catalog):
    """The user gave the file Red too, after the import's Red was written (the window still showed
    Green): undoing the import took it back to Green, and the user's own step then could neither
    undo nor redo it (its undo found it relabelled since)."""
    red, green, blue = fake_catalog[2]
    path, session, _ = import_onto_red_with_a_label_given_meanwhile(
        qtbot, open_window, fake_catalog, lambda s: s.label([1], red))

    def step(action):
        action()
        wait_idle(qtbot, session)
        shown = {i: session.labels.get(i) for i in (1, 2)}
        assert shown == {i: Store(path).labels().get(i) for i in (1, 2)}
        return shown

    stack = session.undo_stack
    assert [step(stack.undo), step(stack.undo)] == [{1: red, 2: None}, {1: green, 2: None}]
    assert [step(stack.redo), step(stack.redo)] == [{1: red, 2: None}, {1: red, 2: red}]
    assert [step(stack.undo), step(stack.redo), step(stack.undo)] == [
        {1: red, 2: None}, {1: red, 2: red}, {1: red, 2: None}]
    assert step(stack.undo) == {1: green, 2: None}


def test_a_label_given_before_the_import_reached_the_file_is_the_imports_before(qtbot, open_window, fake_catalog):
    """Blue given to a dropped file before the job wrote Red over it: undoing the import gives Blue
    back, and undoing Blue then Green (the job's `before` holds the user's Blue)."""
    from protoshelf.core.importer import ImportReport
    from protoshelf.gui import jobs

    path, truth, (red, green, blue) = fake_catalog
    session = open_window(path).session
    session.label([1], green)
    wait_idle(qtbot, session)
    started = session.edits
    session.label([1], blue)
    wait_idle(qtbot, session)
    with Store(path) as job:
        before = job.set_labels([1, 2], red)
    session.intake._on_imported(started, jobs.ImportResult(ImportReport(existing=[1], added=[2]), red, False, before))
    wait_idle(qtbot, session)
    assert undo_all(qtbot, session, path) == [{1: blue, 2: None}, {1: green, 2: None}, {1: None, 2: None}]


def test_undoing_all_after_a_label_given_again_during_an_import_leaves_the_file_as_before_all(
        qtbot, open_window, fake_catalog):
    """The file was Red, then Blue; the import wrote Red; the window caught up (showing Red) and the
    user gave Blue again. The import's undo handed its 'before' to the earlier Blue step as well,
    which was written before the import, so undoing everything left Blue."""
    from protoshelf.core.importer import ImportReport
    from protoshelf.gui import jobs

    path, truth, (red, green, blue) = fake_catalog
    session = open_window(path).session
    for category in (red, blue):
        session.label([1], category)
        wait_idle(qtbot, session)
    started = session.edits
    with Store(path) as job:
        before = job.set_labels([1, 2], red)
    session.catch_up()
    wait_idle(qtbot, session)
    session.label([1], blue)
    wait_idle(qtbot, session)
    session.intake._on_imported(started, jobs.ImportResult(ImportReport(existing=[1], added=[2]), red, False, before))
    wait_idle(qtbot, session)
    assert undo_all(qtbot, session, path) == [
        {1: blue, 2: None}, {1: blue, 2: None}, {1: red, 2: None}, {1: None, 2: None}]


def test_undoing_steps_written_in_order_leaves_their_earlier_labels_alone(qtbot, open_window, fake_catalog):
    """Red, Blue, Red by the window, then Blue by another process: the last undo keeps the other
    process's Blue, and the Blue step's undo then puts back its Red (no job wrote out of order)."""
    path, truth, (red, green, blue) = fake_catalog
    session = open_window(path).session
    for category in (red, blue, red):
        session.label([1], category)
        wait_idle(qtbot, session)
    with Store(path) as cli:
        cli.set_labels([1], blue)
    shown = []
    for _ in range(2):
        session.undo_stack.undo()
        wait_idle(qtbot, session)
        shown.append(session.labels.get(1))
        assert shown[-1] == Store(path).labels().get(1)
    assert shown == [blue, red]


def test_a_cancelled_import_onto_a_category_deleted_meanwhile_keeps_the_files_unlabelled(qtbot, open_window,
                                                                                        fake_catalog):
    from protoshelf.core.importer import ImportReport
    from protoshelf.gui import jobs

    path, truth, (red, green, blue) = fake_catalog
    window = open_window(path)
    session = window.session
    notices = []
    session.notice.connect(notices.append)
    session.delete_category(blue)  # while the import ran on the jobs lane
    wait_idle(qtbot, session)
    session.intake._on_imported(session.edits, jobs.ImportResult(ImportReport(added=[1, 2]), blue, cancelled=True))
    assert notices[-1] == "Import cancelled; the 2 files imported so far are kept, unlabelled (the category was deleted)."
    assert session.labels == {}
    wait_idle(qtbot, session)


def test_export_asks_before_replacing_a_file_at_the_suggested_path(qtbot, open_window, fake_catalog, tmp_path,
                                                                    monkeypatch):
    """The suggested path holds the last export, perhaps edited by hand since; the file dialog's
    own question is not asked again."""
    path, *_ = fake_catalog
    window = open_window(path)
    earlier = tmp_path / "out.csv"
    earlier.write_text("my edits\n")
    asked = []

    def answer(reply):
        return lambda *args: asked.append(args[2]) or reply

    dialog = ExportDialog(window.session, earlier, window)
    qtbot.addWidget(dialog)
    monkeypatch.setattr(QMessageBox, "question", answer(QMessageBox.StandardButton.Cancel))
    dialog.accept()
    assert dialog.result() != dialog.DialogCode.Accepted and asked == ["out.csv already exists in " + str(tmp_path)
                                                                        + ". Replace it?"]
    monkeypatch.setattr(QMessageBox, "question", answer(QMessageBox.StandardButton.Yes))
    dialog.accept()
    assert dialog.result() == dialog.DialogCode.Accepted and len(asked) == 2
    browsed = ExportDialog(window.session, tmp_path / "new.csv", window)
    qtbot.addWidget(browsed)
    monkeypatch.setattr(QFileDialog, "getSaveFileName", lambda *args: (str(earlier), ""))
    browsed._browse()  # the file dialog asked
    browsed.accept()
    assert browsed.result() == browsed.DialogCode.Accepted and len(asked) == 2
    assert earlier.read_text() == "my edits\n"  # the dialog only asks; the export job writes


def test_opening_another_catalog_replaces_the_window(qtbot, fake_catalog, tmp_path):
    path, *_ = fake_catalog
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    app = App(settings, embed_titles=False)
    first = app.open_catalog(path)
    qtbot.addWidget(first)
    second = app.open_catalog(tmp_path / "new.sqlite")
    qtbot.addWidget(second)
    assert first.session.closed and not first.isVisible()
    assert second.isVisible() and second.session.model.rowCount() == 0
    assert settings.value("catalog/last") == str(path.resolve())
    second.close()
    assert settings.value("catalog/last") == str((tmp_path / "new.sqlite").resolve())


def test_a_file_that_is_not_a_catalog_is_refused_and_the_open_one_stays(qtbot, fake_catalog, tmp_path, monkeypatch):
    path, *_ = fake_catalog
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    app = App(settings, embed_titles=False)
    window = app.open_catalog(path)
    qtbot.addWidget(window)
    warnings = []
    monkeypatch.setattr(QMessageBox, "warning", lambda parent, title, text: warnings.append(text))
    bogus = tmp_path / "notes.sqlite"
    bogus.write_text("these are my notes, not a database")
    assert app.open_catalog(bogus) is None
    assert app.window is window and window.isVisible() and not window.session.closed
    assert len(warnings) == 1 and str(bogus) in warnings[0]


def test_a_label_change_does_not_wait_behind_a_long_save_of_predictions(qtbot, open_window, fake_catalog, monkeypatch):
    """Saving a million predictions takes seconds on the lane that applies labels: it gives way."""
    import threading
    import time

    from protoshelf.gui import jobs

    path, truth, categories = fake_catalog
    saving, finished = threading.Event(), threading.Event()

    def long_save(context, progress, predictions, backbone, threshold):
        saving.set()
        while not finished.is_set():  # until cancelled, as the real save is between blocks of rows
            progress(0, 1)
            time.sleep(0.005)

    monkeypatch.setattr(jobs, "persist_predictions", long_save)
    window = open_window(path, save_delay_ms=20)
    session = window.session
    try:
        with qtbot.waitSignal(session.predictions_changed, timeout=10_000):
            session.label(examples(truth, 0), categories[0])
        qtbot.waitUntil(saving.is_set, timeout=10_000)
        saving.clear()
        item = examples(truth, 0, 5)[4]
        with qtbot.waitSignal(session.predictions_changed, timeout=30_000):  # the save never ends by itself
            session.label([item], categories[1])
        assert Store(path).labels()[item] == categories[1]
        qtbot.waitUntil(saving.is_set, timeout=10_000)  # and the save is tried again afterwards
    finally:
        finished.set()


def test_an_old_catalog_is_upgraded_off_the_gui_thread_behind_a_dialog(qtbot, tmp_path, monkeypatch):
    """A schema migration can take minutes on a big catalog: it runs on a worker thread while the
    app shows a busy dialog and keeps handling events, then the catalog opens with its items."""
    import threading

    from alembic import command

    from protoshelf.core import migrations
    from protoshelf.core.store import make_engine, needs_upgrade
    from tests.conftest import add_items

    path = tmp_path / "old.sqlite"
    with Store(path) as store:
        add_items(store, 3)
    assert not needs_upgrade(path)
    engine = make_engine(path)
    command.downgrade(migrations.alembic_config(engine), "0006")
    engine.dispose()
    assert needs_upgrade(path)

    seen, real_upgrade = {}, migrations.upgrade

    def slow_upgrade(engine, revision="head"):
        if migrations.current_revision(engine) != migrations.head_revision():  # the call that migrates
            seen["thread"] = threading.current_thread()
            threading.Event().wait(0.3)
        real_upgrade(engine, revision)

    monkeypatch.setattr(migrations, "upgrade", slow_upgrade)
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    with busy_dialog_ticks() as ticks:
        window = App(settings, embed_titles=False).open_catalog(path)
    qtbot.addWidget(window)
    assert seen["thread"] is not threading.main_thread()
    assert sum(ticks) >= 5  # the GUI thread kept running its event loop, the dialog shown, during the 0.3 s
    assert not needs_upgrade(path) and window.session.model.rowCount() == 3
    wait_idle(qtbot, window.session, 60_000)


INTERRUPTED_UPGRADE = """
import os, signal, sys, threading
from protoshelf.core import migrations
from protoshelf.gui import app

real_upgrade = migrations.upgrade

def upgrade_interrupted(engine, revision="head"):
    if migrations.current_revision(engine) != migrations.head_revision():  # the call that migrates
        os.kill(os.getpid(), signal.SIGINT)  # the user presses Ctrl-C while the catalog is upgraded
        threading.Event().wait(1.0)
    real_upgrade(engine, revision)

migrations.upgrade = upgrade_interrupted
sys.exit(app.run_app(sys.argv[1]))
"""


def test_ctrl_c_while_an_old_catalog_is_upgraded_ends_the_start_with_the_catalog_whole(tmp_path):
    """Ctrl-C closed only the busy dialog; the window then opened as if nothing had been pressed.
    The upgrade itself finishes (stopping a migration halfway is what must never happen), and then
    no window is built."""
    from alembic import command

    from protoshelf.core import migrations
    from protoshelf.core.store import make_engine, needs_upgrade
    from protoshelf.gui.app import INTERRUPTED
    from tests.conftest import add_items

    path = tmp_path / "old.sqlite"
    with Store(path) as store:
        add_items(store, 3)
    engine = make_engine(path)
    command.downgrade(migrations.alembic_config(engine), "0006")
    engine.dispose()
    started = start_app(INTERRUPTED_UPGRADE, tmp_path, str(path))

    assert started.returncode == INTERRUPTED, started.stderr
    assert WINDOW_BUILT not in started.stderr  # no window flashes up after Ctrl-C
    assert not needs_upgrade(path)
    with Store(path) as store:
        assert store.item_count() == 3


def test_torch_that_will_not_import_is_one_dialog_not_one_per_task(qtbot, fake_catalog, monkeypatch):
    """The load, the fits and the embedding all fail the same way (four dialogs before); the user
    reads it once, and the others reach the status bar."""
    from protoshelf.gui import jobs
    from protoshelf.gui.main_window import MainWindow
    from protoshelf.gui.session import CatalogSession

    def no_torch(*_args, **_kwargs):
        raise ImportError("No module named 'torch'")

    for job in ("load_model", "fit", "embed_missing"):
        monkeypatch.setattr(jobs, job, no_torch)
    path, _truth, _categories = fake_catalog
    session = CatalogSession(path, embed_titles=False)
    problems, notices, details = [], [], []
    session.problem.connect(lambda title, text: (problems.append(title), details.append(text)))
    session.notice.connect(notices.append)
    window = MainWindow(session, None)
    qtbot.addWidget(window)
    window.show()
    session.start()
    wait_idle(qtbot, session)
    assert problems == ["The model could not be loaded"]
    assert window.controls.device_label.text() == "The model could not be loaded."  # not "Loading the model…"
    summary, _, trace = details[0].partition("\n")
    assert summary == "unexpected error (ImportError: No module named 'torch')"  # no "--debug": that is the CLI's
    assert "Traceback (most recent call last)" in trace and "no_torch" in trace
    assert {n.split(":")[0] for n in notices if "No module named 'torch'" in n} == {
        "Embedding failed", "Predictions could not be updated"}
    monkeypatch.setattr(jobs, "edit", no_torch)  # the same words from a task that has nothing to do with the model
    session.label([1], session.categories[0].id)
    wait_idle(qtbot, session)
    assert problems[1:] == ["A change could not be saved"]


def test_a_model_that_fails_to_load_is_reported_and_labels_still_predict(qtbot, fake_catalog, monkeypatch):
    """The first fit waits for the model's load (the methods' kinds come with it); a failed load is
    reported once and must not leave the catalog without predictions."""
    from protoshelf.gui import jobs
    from protoshelf.gui.main_window import MainWindow
    from protoshelf.gui.session import CatalogSession

    def broken(*_args):
        raise RuntimeError("no model here")

    monkeypatch.setattr(jobs, "load_model", broken)
    path, truth, categories = fake_catalog
    session = CatalogSession(path, embed_titles=False)
    problems = []
    session.problem.connect(lambda title, text: problems.append(title))
    window = MainWindow(session, None)
    qtbot.addWidget(window)
    window.show()
    session.start()
    wait_idle(qtbot, session)
    assert problems == ["The model could not be loaded"] and session.model_info is None
    label_all(qtbot, session, {i: categories[k] for k in range(3) for i in examples(truth, k)})
    predicted = [window.view.model().index(r).data(PredictionRole) for r in range(window.view.model().rowCount())]
    assert predicted == [categories[k] for k in truth]


def test_items_dragged_from_another_catalogs_window_are_refused(qtbot, open_window, fake_catalog, tmp_path):
    """Item ids mean nothing in another catalog: a drop of catalog A's items 1-3 on B's category
    labelled B's items 1-3, unrelated products."""
    from benchmarks.gui_catalog import make_fake_catalog

    path, *_ = fake_catalog
    other = tmp_path / "other.sqlite"
    make_fake_catalog(other, 90, dim=64, categories=3, seed=99, noise=0.4)
    with Store(other) as store:
        shoes = store.create_category("Shoes")
    a, b = open_window(path), open_window(other)
    wait_idle(qtbot, a.session)
    wait_idle(qtbot, b.session)
    model = a.view.model()
    mime = model.mimeData([model.index(row) for row in (0, 1, 2)])
    drop(b.panel.list.viewport(), category_point(b, shoes), mime)
    wait_idle(qtbot, b.session)
    assert Store(other).labels() == {} and b.session.labels == {}
    drop(a.panel.list.viewport(), category_point(a, a.session.categories[0].id), mime)  # its own window: labelled
    wait_idle(qtbot, a.session)
    assert set(model.item_id(row) for row in (0, 1, 2)) <= set(a.session.labels)
    order = [c.name for c in b.session.categories]
    drop(b.panel.list.viewport(), category_point(b, shoes), category_mime(a.session.store.path, shoes))  # A's row 1
    wait_idle(qtbot, b.session)
    assert [c.name for c in b.session.categories] == order
    assert dropped_item_ids(QMimeData(), other) == []
    legacy = QMimeData()  # an older ProtoShelf's bare list of ids
    legacy.setData(MIME_TYPE, b"[1, 2, 3]")
    assert dropped_item_ids(legacy, other) == []
