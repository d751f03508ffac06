"""100,000 items: the grid scrolls without loading 100,000 thumbnails or rows."""
from __future__ import annotations

import pytest
from PySide6.QtCore import QPoint

from benchmarks.gui_catalog import make_fake_catalog
from protoshelf.gui.catalog_model import ROW_BLOCK

ITEMS = 100_000


@pytest.fixture(scope="module")
def big_catalog(tmp_path_factory):
    path = tmp_path_factory.mktemp("big") / "big.sqlite"
    make_fake_catalog(path, ITEMS, dim=8, categories=3)
    return path


@pytest.mark.slow
def test_scrolling_100k_items_loads_only_what_is_shown(qtbot, open_window, big_catalog, monkeypatch):
    window = open_window(big_catalog)
    qtbot.waitExposed(window)
    session = window.session
    model, view = session.model, window.view
    assert model.rowCount() == ITEMS
    fetched = []
    original_items = session.store.items
    monkeypatch.setattr(session.store, "items", lambda ids: fetched.append(len(ids)) or original_items(ids))

    bar = view.verticalScrollBar()
    positions = [bar.maximum() * k // 10 for k in range(11)]
    for position in positions:
        bar.setValue(position)
        qtbot.wait(5)
    qtbot.waitUntil(lambda: window.thumbnails.in_flight == 0)
    loads = window.thumbnails.loads_started
    visible_per_screen = (view.viewport().width() // view.gridSize().width() + 1) * (
        view.viewport().height() // view.gridSize().height() + 2)
    assert 0 < loads <= visible_per_screen * len(positions)
    assert loads < ITEMS // 50
    assert sum(fetched) <= ROW_BLOCK * 2 * len(positions)

    last_row = view.indexAt(QPoint(30, 30)).row()
    assert last_row > ITEMS * 0.9
    view.selectAll()
    assert sum(r.height() for r in view.selectionModel().selection()) == ITEMS
