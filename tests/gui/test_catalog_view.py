"""The grid view's own geometry: cells fill the width, clicks and keys land on the right item."""
from __future__ import annotations

from PySide6.QtCore import QPoint, Qt

from protoshelf.gui.catalog_view import CELL, GAP


def shown(qtbot, open_window, fake_catalog):
    window = open_window(fake_catalog[0])
    qtbot.waitExposed(window)
    view = window.view
    qtbot.waitUntil(lambda: view.model().rowCount() == 90)
    return window, view


def test_cells_share_the_width_and_every_cell_hit_tests_back_to_itself(qtbot, open_window, fake_catalog):
    window, view = shown(qtbot, open_window, fake_catalog)
    width = view.viewport().width()
    columns = width // view.gridSize().width()
    assert view.gridSize().width() >= CELL.width() + GAP
    assert width - columns * view.gridSize().width() < columns  # no column-wide gap on the right
    for row in (0, 1, columns - 1, columns, 89):
        index = view.model().index(row)
        view.scrollTo(index)
        rect = view.visualRect(index)
        assert view.viewport().rect().contains(rect)
        assert view.indexAt(rect.center()).row() == row
    assert not view.indexAt(QPoint(columns * view.gridSize().width() + 1, 5)).isValid()
    view.scrollTo(view.model().index(0))
    assert view.verticalScrollBar().value() == 0


def test_click_selects_a_cell_and_shift_click_a_range(qtbot, open_window, fake_catalog):
    window, view = shown(qtbot, open_window, fake_catalog)
    model = view.model()
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=view.visualRect(model.index(2)).center())
    assert view.selected_rows().tolist() == [2]
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ShiftModifier,
                     view.visualRect(model.index(11)).center())
    assert view.selected_rows().tolist() == list(range(2, 12))
    qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, Qt.KeyboardModifier.ControlModifier,
                     view.visualRect(model.index(5)).center())
    assert 5 not in view.selected_rows().tolist()


def test_keys_move_by_cell_line_and_page(qtbot, open_window, fake_catalog):
    window, view = shown(qtbot, open_window, fake_catalog)
    columns = view.viewport().width() // view.gridSize().width()
    view.setFocus()
    view.setCurrentIndex(view.model().index(0))
    moves = [
        (Qt.Key.Key_Right, 1), (Qt.Key.Key_Down, 1 + columns), (Qt.Key.Key_Left, columns),
        (Qt.Key.Key_Up, 0), (Qt.Key.Key_End, 89), (Qt.Key.Key_Down, 89), (Qt.Key.Key_Home, 0),
    ]
    for key, row in moves:
        qtbot.keyClick(view, key)
        assert view.currentIndex().row() == row, key
    qtbot.keyClick(view, Qt.Key.Key_PageDown)
    lines_per_page = view.viewport().height() // view.gridSize().height()
    assert view.currentIndex().row() == min(89, lines_per_page * columns)
    assert view.viewport().rect().intersects(view.visualRect(view.currentIndex()))


def test_double_click_on_a_cell_reports_that_item(qtbot, open_window, fake_catalog):
    window, view = shown(qtbot, open_window, fake_catalog)
    index = view.model().index(7)
    centre = view.visualRect(index).center()
    with qtbot.waitSignal(view.doubleClicked) as clicked:  # a real double click starts with a click
        qtbot.mouseClick(view.viewport(), Qt.MouseButton.LeftButton, pos=centre)
        qtbot.mouseDClick(view.viewport(), Qt.MouseButton.LeftButton, pos=centre)
    assert clicked.args[0].row() == 7


def test_dragging_a_band_from_empty_space_selects_the_cells_it_covers(qtbot, open_window, fake_catalog):
    from protoshelf.gui.catalog_model import FILTER_LABELLED
    from tests.gui.conftest import examples, wait_idle

    path, truth, categories = fake_catalog
    window, view = shown(qtbot, open_window, fake_catalog)
    window.session.label(examples(truth, 0, 3), categories[0])
    wait_idle(qtbot, window.session)
    window.show_filter(FILTER_LABELLED)
    qtbot.waitUntil(lambda: view.model().rowCount() == 3)
    below = QPoint(view.visualRect(view.model().index(2)).right(), view.visualRect(view.model().index(0)).bottom() + 40)
    qtbot.mousePress(view.viewport(), Qt.MouseButton.LeftButton, pos=below)
    qtbot.mouseMove(view.viewport(), below - QPoint(60, 60))
    qtbot.mouseMove(view.viewport(), view.visualRect(view.model().index(1)).center())
    assert view._band.isVisible()
    qtbot.mouseRelease(view.viewport(), Qt.MouseButton.LeftButton, pos=view.visualRect(view.model().index(1)).center())
    assert view.selected_rows().tolist() == [1, 2]
    assert not view._band.isVisible()


def test_a_calibrated_confidence_is_never_shown_as_certain_nor_as_zero():
    from protoshelf.gui.catalog_view import describe_prediction, percent

    assert [percent(v) for v in (0.9996, 0.994, 0.5, 0.004)] == [">99%", "99%", "50%", "<1%"]
    assert describe_prediction({1: "Fruit"}, None, 1, 0.9999) == "Predicted Fruit >99%"
    assert describe_prediction({1: "Fruit"}, None, -1, 0.001, (1, 0.001)) == "Unassigned · closest Fruit <1%"
