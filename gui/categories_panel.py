"""The categories panel: one row per category with its examples and predicted counts.

Every row is a drop target: grid items dropped on it become its examples, files and folders from
the file manager are imported and become its examples. The first row, "Unassigned", counts items
the classifier would not put anywhere; dropping items there unlabels them, dropping files there
imports them unlabelled. Rows carry the category's number (keys 1-9 for the first nine), which stays
put when another category is deleted; dragging a row reorders. Clicking a row only selects it;
double-clicking (or the filter button) shows its items in the grid. The search box narrows a long list.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from PySide6.QtCore import QPoint, Qt, Signal, Slot
from PySide6.QtGui import QAction, QBrush, QColor, QDrag, QIcon, QKeySequence, QPainter, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView, QColorDialog, QHBoxLayout, QHeaderView, QInputDialog, QLabel, QLineEdit, QMenu, QMessageBox,
    QPushButton, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget,
)

from protoshelf.core.store import StoreError
from protoshelf.gui.catalog_model import FILTER_UNASSIGNED
from protoshelf.gui.catalog_view import UNASSIGNED_COLOUR
from protoshelf.gui.drops import category_mime, dropped_category, dropped_item_ids, dropped_paths
from protoshelf.gui.session import CatalogSession

UNASSIGNED_ROW = -1
CategoryRole = Qt.ItemDataRole.UserRole + 10


def ask_name(parent, title: str, label: str, text: str = "") -> tuple[str, bool]:
    """QInputDialog.getText, wide enough that the title and a long name are not cut off."""
    dialog = QInputDialog(parent)
    dialog.setWindowTitle(title)
    dialog.setLabelText(label)
    dialog.setTextValue(text)
    dialog.setMinimumWidth(max(380, dialog.fontMetrics().horizontalAdvance(title + text) + 160))
    accepted = dialog.exec() == QInputDialog.DialogCode.Accepted
    return dialog.textValue(), accepted


def swatch(colour: QColor, size: int = 16, outline: bool = False) -> QIcon:
    """A coloured disc; drawn once per colour (the panel rebuilds 500 rows after a rename)."""
    return _swatch(QColor(colour).name(QColor.NameFormat.HexArgb), size, outline)


@lru_cache(maxsize=1024)
def _swatch(colour_name: str, size: int, outline: bool) -> QIcon:
    colour = QColor(colour_name)
    pixmap = QPixmap(size, size)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    if outline:
        painter.setPen(colour)
        painter.drawEllipse(1, 1, size - 3, size - 3)
    else:
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(colour)
        painter.drawEllipse(1, 1, size - 2, size - 2)
    painter.end()
    return QIcon(pixmap)


class CategoryList(QTreeWidget):
    """The rows; a drop lands on the row under the pointer (None: the Unassigned row)."""

    items_dropped = Signal(object, list)
    files_dropped = Signal(object, list)
    category_moved = Signal(int, int, bool)  # moved, target, after the target

    def __init__(self, catalog: Path, parent=None):
        super().__init__(parent)
        self.catalog = catalog
        """Items dragged from another catalog's window are refused (their ids mean nothing here)."""
        self.setColumnCount(4)
        self.setHeaderLabels(["#", "Category", "Examples", "Predicted"])
        self.setRootIsDecorated(False)
        self.setUniformRowHeights(True)
        self.setAcceptDrops(True)
        self.setDragEnabled(True)
        self.setDragDropMode(QAbstractItemView.DragDropMode.DragDrop)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        header = self.header()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(1, QHeaderView.ResizeMode.Stretch)
        for column in (0, 2, 3):
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        self._highlighted: QTreeWidgetItem | None = None

    def row_for(self, category_id: int | None) -> QTreeWidgetItem | None:
        wanted = UNASSIGNED_ROW if category_id is None else category_id
        for i in range(self.topLevelItemCount()):
            if self.topLevelItem(i).data(0, CategoryRole) == wanted:
                return self.topLevelItem(i)
        return None

    def _target(self, event) -> QTreeWidgetItem | None:
        mime = event.mimeData()
        row = self.itemAt(event.position().toPoint())
        if dropped_category(mime, self.catalog) is not None:
            return row if row is not None and row.data(0, CategoryRole) != UNASSIGNED_ROW else None
        if not (dropped_item_ids(mime, self.catalog) or dropped_paths(mime)):
            return None
        return row

    def startDrag(self, actions) -> None:
        """A category row dragged to another place in the list."""
        row = self.currentItem()
        if row is None or row.data(0, CategoryRole) == UNASSIGNED_ROW:
            return
        drag = QDrag(self)
        drag.setMimeData(category_mime(self.catalog, row.data(0, CategoryRole)))
        drag.setPixmap(row.icon(1).pixmap(16, 16))
        drag.exec(Qt.DropAction.MoveAction)

    def _highlight(self, row: QTreeWidgetItem | None) -> None:
        if self._highlighted is row:
            return
        for item in (self._highlighted, row):
            if item is not None:
                brush = QBrush(self.palette().highlight().color().lighter(160)) if item is row else QBrush()
                for column in range(self.columnCount()):
                    item.setBackground(column, brush)
        self._highlighted = row

    def dragEnterEvent(self, event) -> None:
        mime = event.mimeData()
        ours = dropped_item_ids(mime, self.catalog) or dropped_category(mime, self.catalog) is not None
        if ours or dropped_paths(mime):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event) -> None:
        row = self._target(event)
        self._highlight(row)
        if row is None:
            event.ignore()
        else:
            event.acceptProposedAction()

    def dragLeaveEvent(self, event) -> None:
        self._highlight(None)

    def dropEvent(self, event) -> None:
        self._highlight(None)
        row = self._target(event)
        if row is None:
            event.ignore()
            return
        event.acceptProposedAction()
        category = row.data(0, CategoryRole)
        category_id = None if category == UNASSIGNED_ROW else category
        mime = event.mimeData()
        if (moved := dropped_category(mime, self.catalog)) is not None:
            after = event.position().toPoint().y() > self.visualItemRect(row).center().y()
            if moved != category:
                self.category_moved.emit(moved, category, after)
        elif ids := dropped_item_ids(mime, self.catalog):
            self.items_dropped.emit(category_id, ids)
        else:
            self.files_dropped.emit(category_id, dropped_paths(mime))


class CategoriesPanel(QWidget):
    filter_requested = Signal(object)

    def __init__(self, session: CatalogSession, parent=None):
        super().__init__(parent)
        self.session = session
        self.list = CategoryList(session.store.path, self)
        self.list.itemDoubleClicked.connect(self._on_double_clicked)
        self.list.category_moved.connect(self._on_category_moved)
        self.search = QLineEdit(placeholderText="Find a category…", clearButtonEnabled=True)
        self.search.textChanged.connect(self._apply_search)
        self.list.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.list.customContextMenuRequested.connect(self._context_menu)
        self.list.items_dropped.connect(self._on_items_dropped)
        self.list.files_dropped.connect(self._on_files_dropped)
        self.list.itemSelectionChanged.connect(self._update_buttons)

        title = QLabel("<b>Categories</b>")
        hint = QLabel("Drag items or image files onto a row to add examples. Keys 1–9 label the selection, "
                      "L picks any category, 0 unlabels. Double-click a row to show its items; drag rows to reorder.")
        hint.setWordWrap(True)
        hint.setStyleSheet("color: palette(mid);")
        self.filter_button = QPushButton("Show")
        self.filter_button.setToolTip("Show the selected category's items in the grid (or double-click the row)")
        self.filter_button.clicked.connect(self._filter_selected)
        self.new_button = QPushButton("New…")
        self.rename_button = QPushButton("Rename…")
        self.colour_button = QPushButton("Colour…")
        self.delete_button = QPushButton("Delete")
        self.new_button.clicked.connect(self.ask_new_category)
        self.rename_button.clicked.connect(self._rename_selected)
        self.colour_button.clicked.connect(self._recolour_selected)
        self.delete_button.clicked.connect(self._delete_selected)
        buttons = QHBoxLayout()
        for button in (self.filter_button, self.new_button, self.rename_button, self.colour_button, self.delete_button):
            buttons.addWidget(button)
        rename = QAction("Rename", self.list, shortcut=QKeySequence(Qt.Key.Key_F2), triggered=self._rename_selected)
        rename.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
        self.list.addAction(rename)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(title)
        layout.addWidget(self.search)
        layout.addWidget(self.list, 1)
        layout.addLayout(buttons)
        layout.addWidget(hint)

        session.categories_changed.connect(self.refresh)
        session.labels_changed.connect(self.refresh_counts)
        session.predictions_changed.connect(self.refresh_counts)
        self.refresh()

    @Slot()
    def refresh(self) -> None:
        selected = self.selected_category()
        self.list.setUpdatesEnabled(False)
        self.list.clear()
        unassigned = QTreeWidgetItem(["", "Unassigned", "", ""])
        unassigned.setData(0, CategoryRole, UNASSIGNED_ROW)
        unassigned.setIcon(1, swatch(UNASSIGNED_COLOUR, outline=True))
        unassigned.setToolTip(1, "Items the classifier would not put in any category (below the threshold).")
        rows = [unassigned]
        for category in self.session.categories:
            row = QTreeWidgetItem([str(category.position), category.name, "", ""])
            row.setData(0, CategoryRole, category.id)
            row.setIcon(1, swatch(QColor(category.colour)))
            key = f"key {category.position}" if category.position <= 9 else "L, then type its name"
            row.setToolTip(0, f"Label the selection as {category.name}: {key}")
            row.setToolTip(1, category.name)
            rows.append(row)
        for row in rows:  # before the rows join the list: each change there re-measures every column
            for column in (0, 2, 3):
                row.setTextAlignment(column, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.list.addTopLevelItems(rows)
        if selected is not None and (row := self.list.row_for(selected)) is not None:
            row.setSelected(True)
        self.refresh_counts()
        self._apply_search()
        self.list.setUpdatesEnabled(True)
        self._update_buttons()

    @Slot()
    def _apply_search(self) -> None:
        """Hide the rows whose name lacks the typed text (any case); Unassigned always shows."""
        text = self.search.text().strip().casefold()
        for i in range(1, self.list.topLevelItemCount()):
            row = self.list.topLevelItem(i)
            row.setHidden(bool(text) and text not in row.text(1).casefold() and text != row.text(0))

    @Slot()
    def refresh_counts(self) -> None:
        counts = self.session.model.counts()
        for i in range(self.list.topLevelItemCount()):
            row = self.list.topLevelItem(i)
            category = row.data(0, CategoryRole)
            if category == UNASSIGNED_ROW:
                row.setText(3, f"{counts.unassigned:,}")
            else:
                row.setText(2, f"{counts.examples.get(category, 0):,}")
                row.setText(3, f"{counts.predicted.get(category, 0):,}")

    def selected_category(self) -> int | None:
        rows = self.list.selectedItems()
        category = rows[0].data(0, CategoryRole) if rows else None
        return None if category in (None, UNASSIGNED_ROW) else category

    @Slot()
    def _update_buttons(self) -> None:
        has = self.selected_category() is not None
        for button in (self.rename_button, self.colour_button, self.delete_button):
            button.setEnabled(has)
        self.filter_button.setEnabled(bool(self.list.selectedItems()))

    @Slot(QTreeWidgetItem, int)
    def _on_double_clicked(self, row: QTreeWidgetItem, column: int) -> None:
        category = row.data(0, CategoryRole)
        self.filter_requested.emit(FILTER_UNASSIGNED if category == UNASSIGNED_ROW else category)

    @Slot()
    def _filter_selected(self) -> None:
        rows = self.list.selectedItems()
        if rows:
            self._on_double_clicked(rows[0], 0)

    @Slot(int, int, bool)
    def _on_category_moved(self, moved: int, target: int, after: bool) -> None:
        order = [c.id for c in self.session.categories if c.id != moved]
        order.insert(order.index(target) + after, moved)
        self.session.reorder_categories(order)

    @Slot(object, list)
    def _on_items_dropped(self, category_id: int | None, item_ids: list[int]) -> None:
        self.session.label(item_ids, category_id)

    @Slot(object, list)
    def _on_files_dropped(self, category_id: int | None, paths: list[str]) -> None:
        self.session.import_paths(paths, category_id)

    @Slot(QPoint)
    def _context_menu(self, position: QPoint) -> None:
        row = self.list.itemAt(position)
        menu = QMenu(self)
        menu.addAction(QAction("New category…", menu, triggered=self.ask_new_category))
        if row is not None:
            row.setSelected(True)
            menu.addAction(QAction("Show its items", menu, triggered=self._filter_selected))
        if row is not None and row.data(0, CategoryRole) != UNASSIGNED_ROW:
            menu.addAction(QAction("Rename…", menu, triggered=self._rename_selected))
            menu.addAction(QAction("Change colour…", menu, triggered=self._recolour_selected))
            menu.addAction(QAction("Delete", menu, triggered=self._delete_selected))
        menu.exec(self.list.viewport().mapToGlobal(position))

    def _attempt(self, action, *args) -> bool:
        try:
            action(*args)
        except StoreError as exc:
            QMessageBox.warning(self, "Category", str(exc))
            return False
        return True

    @Slot()
    def ask_new_category(self, examples: list[int] | None = None) -> None:
        """With `examples`, the items selected in the grid become the new category's first examples."""
        what = f" from {len(examples):,} item{'s' if len(examples) != 1 else ''}" if examples else ""
        name, ok = ask_name(self, f"New category{what}", "Name:")
        if ok:
            self._attempt(self.session.create_category, name, None, examples or [])

    @Slot()
    def _rename_selected(self) -> None:
        category_id = self.selected_category()
        if category_id is None:
            return
        old = self.session.category(category_id).name
        name, ok = ask_name(self, f"Rename category {old}", "New name:", old)
        if ok:
            self._attempt(self.session.rename_category, category_id, name)

    @Slot()
    def _recolour_selected(self) -> None:
        category_id = self.selected_category()
        if category_id is None:
            return
        colour = QColorDialog.getColor(QColor(self.session.category(category_id).colour), self, "Category colour")
        if colour.isValid():
            self.session.recolour_category(category_id, colour.name())

    @Slot()
    def _delete_selected(self) -> None:
        category_id = self.selected_category()
        if category_id is not None:
            self.session.delete_category(category_id)
