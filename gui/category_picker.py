"""Label with any category from the keyboard: L (or /), a few letters, Enter.

The first nine categories have number keys; a shop with 200 needs a search. Names are matched
fuzzily (rapidfuzz), so "tshirt" finds "T-Shirts"; with nothing typed, the categories used most
recently come first, since the next label is most often one of the last few.
"""
from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtGui import QColor, QKeyEvent
from PySide6.QtWidgets import QDialog, QLabel, QLineEdit, QListWidget, QListWidgetItem, QVBoxLayout
from rapidfuzz import fuzz, utils

from protoshelf.core.store import CategoryRow
from protoshelf.gui.categories_panel import swatch

SHOWN = 50
MATCH_AT_LEAST = 50


def category_text(category: CategoryRow) -> str:
    """A category with its number, as everywhere it appears: "3 · Fruit"."""
    return f"{category.position} · {category.name}"


def rank_categories(query: str, categories: Sequence[CategoryRow], recent: Sequence[int] = ()) -> list[CategoryRow]:
    """Best matches first: the number typed, then names starting with the text, then fuzzy matches;
    among equals, the most recently used. No text: recent ones, then the rest by number."""
    recency = {category_id: len(recent) - i for i, category_id in enumerate(recent)}
    query = query.strip()
    if not query:
        return sorted(categories, key=lambda c: (-recency.get(c.id, 0), c.position))
    wanted = utils.default_process(query)
    scored = []
    for category in categories:
        name = utils.default_process(category.name)
        if query == str(category.position):
            score = 300.0
        elif name.startswith(wanted) or name.replace(" ", "").startswith(wanted.replace(" ", "")):
            score = 200.0
        else:
            score = max(fuzz.partial_ratio(wanted, name), fuzz.WRatio(wanted, name))
        if score >= MATCH_AT_LEAST:
            scored.append((-score, -recency.get(category.id, 0), category.position, category))
    return [entry[-1] for entry in sorted(scored, key=lambda entry: entry[:3])]


class CategoryPicker(QDialog):
    """A search field over a list; Enter (or a double-click) chooses, Escape closes."""

    chosen = Signal(int)

    def __init__(self, categories: Sequence[CategoryRow], recent: Sequence[int], count: int, parent=None):
        super().__init__(parent)
        self.setWindowTitle(f"Label {count:,} item{'s' if count != 1 else ''} as…")
        self.categories, self.recent = list(categories), list(recent)
        self.query = QLineEdit(placeholderText="Type a few letters of a category, or its number")
        self.matches = QListWidget()
        self.hint = QLabel("Enter labels the selection · ↑↓ choose · Esc closes")
        self.hint.setStyleSheet("color: palette(mid);")
        layout = QVBoxLayout(self)
        for widget in (self.query, self.matches, self.hint):
            layout.addWidget(widget)
        self.query.textChanged.connect(self._refresh)
        self.query.returnPressed.connect(self._choose)
        self.matches.itemActivated.connect(self._choose)
        self.resize(420, 380)
        self._refresh()

    @Slot()
    def _refresh(self) -> None:
        self.matches.clear()
        for category in rank_categories(self.query.text(), self.categories, self.recent)[:SHOWN]:
            item = QListWidgetItem(swatch(QColor(category.colour)), category_text(category))
            item.setData(Qt.ItemDataRole.UserRole, category.id)
            self.matches.addItem(item)
        self.matches.setCurrentRow(0)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        """Up and Down move through the matches while the text field keeps the focus."""
        if event.key() in (Qt.Key.Key_Up, Qt.Key.Key_Down) and self.matches.count():
            step = -1 if event.key() == Qt.Key.Key_Up else 1
            self.matches.setCurrentRow(max(0, min(self.matches.count() - 1, self.matches.currentRow() + step)))
        else:
            super().keyPressEvent(event)

    @Slot()
    def _choose(self) -> None:
        item = self.matches.currentItem()
        if item is None:
            return
        self.chosen.emit(item.data(Qt.ItemDataRole.UserRole))
        self.accept()
