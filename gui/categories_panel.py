"""The categories panel: one row per category with its examples and predicted counts.

Every row is a drop target: grid items dropped on it become its examples, files and folders from
the file manager are imported and become its examples. The first row, "Unassigned", counts items
the classifier would not put anywhere; dropping items there unlabels them, dropping files there
imports them unlabelled. Rows are numbered like the keyboard shortcuts that assign them.
"""
from __future__ import annotations

from PySide6.QtCore import QPoint, Qt, Signal, Slot
from PySide6.QtGui import QAction, QBrush, QColor, QIcon, QPainter, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView, QColorDialog, QHBoxLayout, QHeaderView, QInputDialog, QLabel, QMenu, QMessageBox,
    QPushButton, QTreeWidget, QTreeWidgetItem, QVBoxLayout, QWidget,
)

from core.store import StoreError
from gui.catalog_model import FILTER_UNASSIGNED
from gui.catalog_view import UNASSIGNED_COLOUR
from gui.drops import dropped_item_ids, dropped_paths
from gui.session import CatalogSession

UNASSIGNED_ROW = -1
CategoryRole = Qt.ItemDataRole.UserRole + 10


def swatch(colour: QColor, size: int = 16, outline: bool = False) -> QIcon:
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

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setColumnCount(4)
        self.setHeaderLabels(["#", "Category", "Examples", "Predicted"])
        self.setRootIsDecorated(False)
        self.setUniformRowHeights(True)
        self.setAcceptDrops(True)
        self.setDragDropMode(QAbstractItemView.DragDropMode.DropOnly)
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
        if not (dropped_item_ids(mime) or dropped_paths(mime)):
            return None
        return self.itemAt(event.position().toPoint())

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
        if dropped_item_ids(mime) or dropped_paths(mime):
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
        if ids := dropped_item_ids(mime):
            self.items_dropped.emit(category_id, ids)
        else:
            self.files_dropped.emit(category_id, dropped_paths(mime))


class CategoriesPanel(QWidget):
    filter_requested = Signal(object)

    def __init__(self, session: CatalogSession, parent=None):
        super().__init__(parent)
        self.session = session
        self.list = CategoryList(self)
        self.list.itemClicked.connect(self._on_clicked)
        self.list.itemDoubleClicked.connect(self._on_double_clicked)
        self.list.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.list.customContextMenuRequested.connect(self._context_menu)
        self.list.items_dropped.connect(self._on_items_dropped)
        self.list.files_dropped.connect(self._on_files_dropped)
        self.list.itemSelectionChanged.connect(self._update_buttons)

        title = QLabel("<b>Categories</b>")
        hint = QLabel("Drag items or image files onto a row to add examples. Keys 1–9 label the selection, 0 unlabels.")
        hint.setWordWrap(True)
        hint.setStyleSheet("color: palette(mid);")
        self.new_button = QPushButton("New…")
        self.rename_button = QPushButton("Rename…")
        self.colour_button = QPushButton("Colour…")
        self.delete_button = QPushButton("Delete")
        self.new_button.clicked.connect(self.ask_new_category)
        self.rename_button.clicked.connect(self._rename_selected)
        self.colour_button.clicked.connect(self._recolour_selected)
        self.delete_button.clicked.connect(self._delete_selected)
        buttons = QHBoxLayout()
        for button in (self.new_button, self.rename_button, self.colour_button, self.delete_button):
            buttons.addWidget(button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(title)
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
        self.list.clear()
        unassigned = QTreeWidgetItem(["", "Unassigned", "", ""])
        unassigned.setData(0, CategoryRole, UNASSIGNED_ROW)
        unassigned.setIcon(1, swatch(UNASSIGNED_COLOUR, outline=True))
        unassigned.setToolTip(1, "Items the classifier would not put in any category (below the threshold).")
        self.list.addTopLevelItem(unassigned)
        for number, category in enumerate(self.session.categories, start=1):
            row = QTreeWidgetItem([str(number) if number <= 9 else "", category.name, "", ""])
            row.setData(0, CategoryRole, category.id)
            row.setIcon(1, swatch(QColor(category.colour)))
            self.list.addTopLevelItem(row)
        for column in (0, 2, 3):
            for i in range(self.list.topLevelItemCount()):
                self.list.topLevelItem(i).setTextAlignment(column, Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if selected is not None and (row := self.list.row_for(selected)) is not None:
            row.setSelected(True)
        self.refresh_counts()
        self._update_buttons()

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

    @Slot(QTreeWidgetItem, int)
    def _on_clicked(self, row: QTreeWidgetItem, column: int) -> None:
        category = row.data(0, CategoryRole)
        self.filter_requested.emit(FILTER_UNASSIGNED if category == UNASSIGNED_ROW else category)

    @Slot(QTreeWidgetItem, int)
    def _on_double_clicked(self, row: QTreeWidgetItem, column: int) -> None:
        if row.data(0, CategoryRole) != UNASSIGNED_ROW:
            self._rename_selected()

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
        if row is not None and row.data(0, CategoryRole) != UNASSIGNED_ROW:
            row.setSelected(True)
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
    def ask_new_category(self) -> None:
        name, ok = QInputDialog.getText(self, "New category", "Name:")
        if ok:
            self._attempt(self.session.create_category, name)

    @Slot()
    def _rename_selected(self) -> None:
        category_id = self.selected_category()
        if category_id is None:
            return
        old = self.session.category(category_id).name
        name, ok = QInputDialog.getText(self, "Rename category", "Name:", text=old)
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
