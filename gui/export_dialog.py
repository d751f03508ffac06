"""Choose what to export: all items, the ones the grid shows now, or one category; and top-k."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PySide6.QtCore import Slot
from PySide6.QtWidgets import (
    QButtonGroup, QCheckBox, QComboBox, QDialog, QDialogButtonBox, QFileDialog, QFormLayout, QHBoxLayout, QLineEdit,
    QMessageBox, QPushButton, QRadioButton, QSpinBox, QVBoxLayout, QWidget,
)

from protoshelf.gui.session import CatalogSession

EXPORT_FORMATS = (
    ("ProtoShelf: predictions with scores", "protoshelf"),
    ("Google Merchant Center supplemental feed (id, product_type)", "google"),
    ("Shopify product CSV (Handle, Title, Type)", "shopify"),
)


@dataclass(frozen=True)
class ExportRequest:
    path: Path
    top: int
    excel_bom: bool
    item_ids: np.ndarray | None
    format: str = "protoshelf"
    include_unassigned: bool = False


class ExportDialog(QDialog):
    def __init__(self, session: CatalogSession, default_path: Path, parent=None):
        super().__init__(parent)
        self.session = session
        self.replace_confirmed: str | None = None
        """A path the file dialog already asked about replacing."""
        self.setWindowTitle("Export predictions to CSV")
        model = session.model
        self.all_items = QRadioButton(f"All items ({len(model.all_ids()):,})")
        self.shown_items = QRadioButton(f"Items shown in the grid ({model.rowCount():,})")
        self.one_category = QRadioButton("One category:")
        self.category = QComboBox()
        for category in session.categories:
            self.category.addItem(category.name, category.id)
        self.category.currentIndexChanged.connect(self._pick_category)
        self.one_category.setEnabled(bool(session.categories))
        self.all_items.setChecked(True)
        self.scope = QButtonGroup(self)
        for button in (self.all_items, self.shown_items, self.one_category):
            self.scope.addButton(button)
        category_row = QHBoxLayout()
        category_row.addWidget(self.one_category)
        category_row.addWidget(self.category, 1)

        self.top = QSpinBox()
        self.top.setRange(1, 10)
        self.top.setValue(3)
        self.excel = QCheckBox("For Excel (UTF-8 with byte-order mark)")
        self.format = QComboBox()
        for text, name in EXPORT_FORMATS:
            self.format.addItem(text, name)
        self.include_unassigned = QCheckBox("Include products without a category")
        self.format.currentIndexChanged.connect(self._format_changed)
        self._format_changed()
        self.path = QLineEdit(str(default_path))
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        path_row = QHBoxLayout()
        path_row.addWidget(self.path, 1)
        path_row.addWidget(browse)
        path_widget = QWidget()
        path_row.setContentsMargins(0, 0, 0, 0)
        path_widget.setLayout(path_row)

        form = QFormLayout()
        form.addRow("Format", self.format)
        form.addRow("", self.include_unassigned)
        form.addRow("Top categories per item", self.top)
        form.addRow("", self.excel)
        form.addRow("File", path_widget)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, parent=self)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Export")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.all_items)
        layout.addWidget(self.shown_items)
        layout.addLayout(category_row)
        layout.addLayout(form)
        layout.addWidget(buttons)

    @Slot(int)
    def _pick_category(self, index: int) -> None:
        self.one_category.setChecked(True)

    @Slot()
    def _format_changed(self) -> None:
        """Top-k and Excel belong to ProtoShelf's own format (a shop file is uploaded as written, not
        opened in a spreadsheet), the unassigned choice to the shop formats."""
        for_shop = self.format.currentData() != "protoshelf"
        self.top.setEnabled(not for_shop)
        self.excel.setEnabled(not for_shop)
        self.include_unassigned.setEnabled(for_shop)

    @Slot()
    def _browse(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export to", self.path.text(), "CSV files (*.csv)")
        if path:  # the file dialog asks before choosing a file that exists
            self.path.setText(path)
            self.replace_confirmed = str(Path(path).expanduser())

    def accept(self) -> None:
        """The suggested path may hold the last export, edited by hand since: ask before replacing it."""
        path = Path(self.path.text()).expanduser()
        if path.is_file() and str(path) != self.replace_confirmed:
            answer = QMessageBox.question(
                self, "Replace the file?", f"{path.name} already exists in {path.parent}. Replace it?",
                QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel, QMessageBox.StandardButton.Cancel,
            )
            if answer != QMessageBox.StandardButton.Yes:
                return
        super().accept()

    def request(self) -> ExportRequest:
        model = self.session.model
        if self.shown_items.isChecked():
            item_ids = model.visible_ids().copy()
        elif self.one_category.isChecked() and self.category.currentIndex() >= 0:
            item_ids = model.effective_ids(self.category.currentData())
        else:
            item_ids = None
        excel_bom = self.excel.isChecked() and self.excel.isEnabled()  # never for a shop format
        return ExportRequest(
            Path(self.path.text()).expanduser(), self.top.value(), excel_bom, item_ids,
            self.format.currentData(), self.include_unassigned.isChecked(),
        )
