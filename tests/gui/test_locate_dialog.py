"""File ▸ Locate missing images: the dialog finds a missing file, proposes its folder, and re-points
the items whose files are at the new place (issue 12, item 5)."""
from __future__ import annotations

from PySide6.QtWidgets import QApplication

from protoshelf.gui.locate_dialog import LocateMissingDialog
from tests.gui.conftest import wait_idle


def test_locate_missing_images_re_points_a_moved_folder(qtbot, open_window, fake_catalog, tmp_path):
    path, _truth, _categories = fake_catalog  # items at /fake/item000001.png ..., 1000 bytes each
    moved = tmp_path / "moved"
    moved.mkdir()
    for i in (1, 2, 3):
        (moved / f"item{i:06d}.png").write_bytes(b"x" * 1000)
    (moved / "item000004.png").write_bytes(b"x" * 10)  # another file of that name: not moved
    window = open_window(path)
    wait_idle(qtbot, window.session)
    action = next(a for a in window.menuBar().actions()[0].menu().actions() if "Locate missing" in a.text())
    action.trigger()
    dialog = window.locate_dialog
    assert isinstance(dialog, LocateMissingDialog) and dialog.isVisible()
    qtbot.waitUntil(lambda: dialog.old_folder.text() == "/fake", timeout=10_000)
    assert "/fake/item000001.png is missing" in dialog.status.text()
    dialog.new_folder.setText(str(moved))
    dialog.relocate_button.click()
    qtbot.waitUntil(lambda: dialog.result_text.startswith("Relocated"), timeout=10_000)
    assert dialog.result_text == "Relocated 3 images; 87 were not found at the new place."
    wait_idle(qtbot, window.session)
    items = window.session.store.items([1, 2, 3, 4])
    assert [items[i].path for i in (1, 2, 3, 4)] == [str(moved / f"item{i:06d}.png") for i in (1, 2, 3)] + ["/fake/item000004.png"]
    dialog.close()
    QApplication.processEvents()
