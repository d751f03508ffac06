"""How far to trust the predictions: estimated per-category precision and recall, the categories
most often confused, likely mislabelled examples, and the expected share of correct items among
those assigned now. Everything shown was computed on the worker with the fit (core/quality.py);
this window only renders it, again whenever the predictions change.
"""
from __future__ import annotations

from PySide6.QtCore import Qt, Signal, Slot
from PySide6.QtWidgets import (
    QAbstractItemView, QDialog, QHeaderView, QLabel, QListWidget, QListWidgetItem, QTableWidget, QTableWidgetItem,
    QVBoxLayout,
)

from protoshelf.core.quality import expected_share_correct
from protoshelf.gui.session import CatalogSession


def percent(value: float | None) -> str:
    return "–" if value is None else f"{value:.0%}"


class QualityDialog(QDialog):
    """Non-modal: it stays open beside the grid and follows every refit and threshold change."""

    item_activated = Signal(int)
    """A likely-wrong example was double-clicked: its item id."""
    show_in_grid = Signal(int)
    """A likely-wrong example was clicked: show the likely-wrong examples in the grid, this one selected."""

    def __init__(self, session: CatalogSession, parent=None):
        super().__init__(parent)
        self.session = session
        self.setWindowTitle("Prediction quality")
        self.summary = QLabel(wordWrap=True)
        self.table = QTableWidget(0, 4, self)
        self.table.setHorizontalHeaderLabels(["Category", "Examples held out", "Precision", "Recall"])
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.confused = QListWidget(self)
        self.likely_wrong = QListWidget(self)
        self.likely_wrong.itemDoubleClicked.connect(self._on_wrong_activated)
        self.likely_wrong.itemClicked.connect(self._on_wrong_clicked)
        self.likely_wrong.setToolTip("Click: show them in the grid (Show ▸ Likely wrong examples). Double-click: open it.")
        layout = QVBoxLayout(self)
        layout.addWidget(self.summary)
        layout.addWidget(QLabel("Per category, estimated by holding each labelled example out:"))
        layout.addWidget(self.table, 2)
        layout.addWidget(QLabel("Most confused (labelled → predicted when held out):"))
        layout.addWidget(self.confused, 1)
        layout.addWidget(QLabel("Likely wrong examples, worst first (their own category scores low when held out; "
                                "click one to see them in the grid):", wordWrap=True))
        layout.addWidget(self.likely_wrong, 1)
        session.predictions_changed.connect(self.refresh)
        session.categories_changed.connect(self.refresh)
        self.resize(520, 640)
        self.refresh()

    @Slot()
    def refresh(self) -> None:
        predictions = self.session.predictions
        names = {c.id: c.name for c in self.session.categories}
        report = predictions.quality if predictions is not None else None
        self.table.setRowCount(0)
        self.confused.clear()
        self.likely_wrong.clear()
        if predictions is None or report is None:
            self.summary.setText("No predictions yet: label a few items, or name categories the titles can match.")
            return
        expected = expected_share_correct(predictions.confidence, predictions.category_ids)
        assigned = float((predictions.category_ids >= 0).mean()) if len(predictions.category_ids) else 0.0
        lines = [
            f"At the current setting ({self.session.threshold:.0%} sure), {assigned:.0%} of items are assigned "
            f"and about {percent(expected)} of those are expected to be right."
        ]
        if not report.estimated:
            lines.append("Add a second example to a category (or keep its name) to estimate precision and recall.")
        self.summary.setText(" ".join(lines))
        for quality in report.categories:
            row = self.table.rowCount()
            self.table.insertRow(row)
            cells = [names.get(quality.category_id, f"#{quality.category_id}"), str(quality.held_out),
                     percent(quality.precision), percent(quality.recall)]
            for column, text in enumerate(cells):
                cell = QTableWidgetItem(text)
                if column:
                    cell.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(row, column, cell)
        for labelled, predicted, count in report.confused:
            self.confused.addItem(f"{names.get(labelled, labelled)} → {names.get(predicted, predicted)}: {count}")
        for wrong in report.likely_wrong:
            info = self.session.model.item_info(wrong.item_id)
            shown = info.display_name if info is not None else f"Item {wrong.item_id}"
            item = QListWidgetItem(
                f"{shown} (item {wrong.item_id}): labelled {names.get(wrong.labelled, wrong.labelled)}, "
                f"{wrong.own_score:.0%} for it held out; looks like {names.get(wrong.predicted, wrong.predicted)} "
                f"({wrong.predicted_score:.0%})"
            )
            item.setData(Qt.ItemDataRole.UserRole, wrong.item_id)
            self.likely_wrong.addItem(item)

    @Slot(QListWidgetItem)
    def _on_wrong_clicked(self, item: QListWidgetItem) -> None:
        self.show_in_grid.emit(int(item.data(Qt.ItemDataRole.UserRole)))

    @Slot(QListWidgetItem)
    def _on_wrong_activated(self, item: QListWidgetItem) -> None:
        self.item_activated.emit(int(item.data(Qt.ItemDataRole.UserRole)))
