"""The near-duplicate groups found in the catalog: each group's items with their similarity to
the group's first item, exportable as CSV or shown together in the grid."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import Signal, Slot
from PySide6.QtWidgets import (
    QDialog, QDialogButtonBox, QFileDialog, QLabel, QPushButton, QTreeWidget, QTreeWidgetItem, QVBoxLayout,
)

from protoshelf.gui.session import CatalogSession

if TYPE_CHECKING:
    from protoshelf.core.duplicates import DuplicateGroup


class DuplicatesDialog(QDialog):
    show_in_grid = Signal()

    def __init__(self, session: CatalogSession, groups: list[DuplicateGroup], threshold: float, parent=None):
        super().__init__(parent)
        self.session = session
        self.groups = groups
        self.setWindowTitle("Near-duplicates")
        self.resize(560, 480)
        items = sum(len(g) for g in groups)
        summary = QLabel(f"{len(groups):,} groups, {items:,} items, similarity at least {threshold:.2f}.")
        self.tree = QTreeWidget()
        self.tree.setHeaderLabels(["Item", "Similarity"])
        for number, group in enumerate(groups, start=1):
            parent_item = QTreeWidgetItem([f"Group {number} ({len(group)} items)", ""])
            for item_id, similarity in zip(group.item_ids, group.similarities):
                info = session.model.item_info(item_id)
                name = info.display_name if info is not None else f"item {item_id}"
                parent_item.addChild(QTreeWidgetItem([name, f"{similarity:.3f}"]))
            self.tree.addTopLevelItem(parent_item)
        self.tree.expandAll()
        self.tree.resizeColumnToContents(0)

        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.export_button = QPushButton("Export CSV…")
        self.show_button = QPushButton("Show in grid")
        buttons.addButton(self.export_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.addButton(self.show_button, QDialogButtonBox.ButtonRole.ActionRole)
        self.export_button.clicked.connect(self.ask_export)
        self.show_button.clicked.connect(self.show_in_grid)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(summary)
        layout.addWidget(self.tree, 1)
        layout.addWidget(buttons)

    @Slot()
    def ask_export(self) -> None:
        default = Path(self.session.path).with_name(f"{self.session.path.stem}-duplicates.csv")
        path, _ = QFileDialog.getSaveFileName(self, "Export near-duplicates", str(default), "CSV files (*.csv)")
        if path:
            self.session.export_duplicates(self.groups, path)
