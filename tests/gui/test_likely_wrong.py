"""Likely wrong examples where the user works: a grid filter, worst first, marked in the grid, reachable
from the quality view, computed on the worker and recomputed after labels change."""
import threading

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

import protoshelf.core.classify as classify
from protoshelf.gui.catalog_model import FILTER_LIKELY_WRONG, DoubtRole
from tests.gui.conftest import examples, label_all, wait_idle


def plant_mislabel(qtbot, session, truth, categories):
    """Four examples per cluster, plus one Red item labelled Blue; returns that item's id."""
    labels = {i: categories[k] for k in range(3) for i in examples(truth, k, n=4)}
    wrong = examples(truth, 0, n=5)[-1]
    labels[wrong] = categories[2]
    label_all(qtbot, session, labels)
    return wrong


def click_cell(qtbot, view, item_id):
    index = view.model().index(view.model().row_of(item_id))
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=view.visualRect(index).center())


def test_planted_mislabel_is_first_in_the_grid_filter_and_leaves_it_when_fixed(qtbot, open_window, fake_catalog, monkeypatch):
    path, truth, categories = fake_catalog
    threads = []
    original = classify.quality_report
    monkeypatch.setattr(classify, "quality_report",
                        lambda *a, **k: threads.append(threading.current_thread()) or original(*a, **k))
    window = open_window(path)
    session = window.session
    wait_idle(qtbot, session)
    wrong = plant_mislabel(qtbot, session, truth, categories)
    assert threads and threading.main_thread() not in threads  # computed on the worker, never the UI thread

    position = window.filter.findData(FILTER_LIKELY_WRONG)
    assert position >= 0
    count = len(session.model.likely_wrong_ids())
    assert window.filter.itemText(position) == f"Likely wrong examples ({count})" and count >= 1
    window.filter.setCurrentIndex(position)
    model = window.view.model()
    assert model.rowCount() == count
    assert model.item_id(0) == wrong  # the planted mislabel, worst first
    doubt = model.index(0).data(DoubtRole)
    assert doubt.labelled == categories[2] and doubt.predicted == categories[0]
    assert doubt.own_score < doubt.predicted_score
    scores = [model.index(r).data(DoubtRole).own_score for r in range(model.rowCount())]
    assert scores == sorted(scores)
    tip = window.view.delegate.tooltip(model.index(0))
    assert "Example of Blue" in tip and "it looks like Red" in tip
    assert not window.sort.isEnabled()  # the list's own order, worst first
    window.view.grab()  # paints the marked cells without error

    click_cell(qtbot, window.view, wrong)
    assert window.view.selected_ids() == [wrong]
    red = next(c for c in session.categories if c.id == categories[0])
    with qtbot.waitSignal(session.predictions_changed, timeout=10_000):
        QTest.keyClick(window.view, Qt.Key(ord(str(red.position))))
        assert wrong not in window.view.model().visible_ids().tolist()  # gone at once, before the refit
        assert window.filter.currentText() == f"Likely wrong examples ({count - 1})"
    wait_idle(qtbot, session)
    assert wrong not in session.model.likely_wrong_ids().tolist()  # and the refit agrees
    position = window.filter.findData(FILTER_LIKELY_WRONG)
    assert window.filter.itemText(position) == f"Likely wrong examples ({len(session.model.likely_wrong_ids())})"


def test_clicking_a_likely_wrong_example_in_the_quality_view_selects_it_in_the_grid(qtbot, open_window, fake_catalog):
    path, truth, categories = fake_catalog
    window = open_window(path)
    session = window.session
    wait_idle(qtbot, session)
    dialog = window.open_quality()
    wrong = plant_mislabel(qtbot, session, truth, categories)
    assert window.filter.currentData() != FILTER_LIKELY_WRONG

    listed = dialog.likely_wrong
    row = next(r for r in range(listed.count()) if listed.item(r).data(Qt.ItemDataRole.UserRole) == wrong)
    assert row == 0
    rect = listed.visualItemRect(listed.item(row))
    qtbot.mouseClick(listed.viewport(), Qt.MouseButton.LeftButton, pos=rect.center())
    assert window.filter.currentData() == FILTER_LIKELY_WRONG
    assert window.view.currentIndex().data(DoubtRole).item_id == wrong
    assert window.view.selected_ids() == [wrong]
    assert "A or Enter relabels it as Red" in window.statusBar().currentMessage()

    with qtbot.waitSignal(session.predictions_changed, timeout=10_000):
        QTest.keyClick(window.view, Qt.Key.Key_A)  # take the category it looks like
    assert session.labels[wrong] == categories[0]
    assert wrong not in window.view.model().visible_ids().tolist()
    wait_idle(qtbot, session)
    dialog.close()
