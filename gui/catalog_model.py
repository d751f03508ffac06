"""The catalog as a Qt list model: an adapter over item ids, never a copy of the catalog.

Per item the model keeps only numbers, in numpy arrays aligned with the sorted item ids: its label,
its predicted category and confidence. Titles and paths are fetched from the store when a row is
first shown, a block of neighbouring rows at a time, and kept in a bounded cache, so 100,000 items
cost a few megabytes and `data()` touches SQLite about once per screenful. Filtering, searching and
sorting produce an array of positions (the visible rows); `flags()` is a constant, so selecting all
of a huge catalog is instant.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from cachetools import LRUCache
from PySide6.QtCore import QAbstractListModel, QMimeData, QModelIndex, QPersistentModelIndex, Qt

from protoshelf.core.constants import UNASSIGNED
from protoshelf.core.store import Store
from protoshelf.gui.drops import MIME_TYPE, item_ids_mime

if TYPE_CHECKING:
    from protoshelf.core.classify import CatalogPredictions
    from protoshelf.core.quality import LikelyWrong

NOT_CLASSIFIED = -2
NO_LABEL = -1
ROW_BLOCK = 128
ROW_CACHE = 20_000

ItemIdRole = Qt.ItemDataRole.UserRole + 1
LabelRole = Qt.ItemDataRole.UserRole + 2
PredictionRole = Qt.ItemDataRole.UserRole + 3
ConfidenceRole = Qt.ItemDataRole.UserRole + 4
PathRole = Qt.ItemDataRole.UserRole + 5
TitleRole = Qt.ItemDataRole.UserRole + 6
DoubtRole = Qt.ItemDataRole.UserRole + 7
"""A labelled example that looks mislabelled (core/quality.py's LikelyWrong), else None."""

FILTER_ALL = "all"
FILTER_UNASSIGNED = "unassigned"
FILTER_LABELLED = "labelled"
FILTER_NOT_CLASSIFIED = "not-classified"
FILTER_LIKELY_WRONG = "likely-wrong"
SORT_CATALOG = "catalog"
SORT_LEAST_CONFIDENT = "confidence-ascending"
SORT_MOST_CONFIDENT = "confidence-descending"

_FLAGS = (
    Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsDragEnabled
    | Qt.ItemFlag.ItemNeverHasChildren
)


@dataclass(frozen=True)
class RowInfo:
    title: str | None
    path: str
    width: int
    height: int

    @property
    def display_name(self) -> str:
        return self.title or Path(self.path).name


@dataclass(frozen=True)
class Counts:
    """Examples and unlabelled predictions per category, for the categories panel."""

    examples: dict[int, int]
    predicted: dict[int, int]
    unassigned: int
    not_classified: int


def _positions(sorted_ids: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where each of `ids` sits in `sorted_ids`, and which of them are there at all."""
    if np.array_equal(sorted_ids, ids):  # predictions for every item: no search (20 ms at 1M)
        return np.arange(len(ids)), np.ones(len(ids), bool)
    where = np.minimum(np.searchsorted(sorted_ids, ids), max(len(sorted_ids) - 1, 0))
    found = sorted_ids[where] == ids if len(sorted_ids) else np.zeros(len(ids), bool)
    return where, found


def _tally(category_ids: np.ndarray) -> dict[int, int]:
    """How many times each category id occurs: one counting pass, no sort (ids are small)."""
    counts = np.bincount(category_ids) if len(category_ids) else np.empty(0, np.int64)
    return {int(k): int(counts[k]) for k in np.flatnonzero(counts)}


class CatalogModel(QAbstractListModel):
    def __init__(self, store: Store, parent=None):
        super().__init__(parent)
        self.store = store
        self._ids = np.empty(0, np.int64)
        self._labels = np.empty(0, np.int64)
        self._predicted = np.empty(0, np.int64)
        self._confidence = np.empty(0, np.float32)
        self._score_row = np.empty(0, np.int64)
        self._visible = np.empty(0, np.int64)
        self._counts: Counts | None = None
        self._search_texts: list[str] = []
        self._search_source: dict[int, str] = {}
        self._rows: LRUCache = LRUCache(ROW_CACHE)
        self.predictions: CatalogPredictions | None = None
        self._doubts: dict[int, LikelyWrong] = {}
        self.filter: str | int = FILTER_ALL
        self.lists: dict[str, np.ndarray] = {}
        self.search = ""
        self.sort = SORT_CATALOG

    # --- Qt model interface -----------------------------------------------------------

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._visible)

    def flags(self, index: QModelIndex | QPersistentModelIndex) -> Qt.ItemFlag:
        return _FLAGS if index.isValid() else Qt.ItemFlag.ItemIsDropEnabled

    def data(self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or not 0 <= index.row() < len(self._visible):
            return None
        position = int(self._visible[index.row()])
        if role == ItemIdRole:
            return int(self._ids[position])
        if role == LabelRole:
            label = int(self._labels[position])
            return None if label == NO_LABEL else label
        if role == PredictionRole:
            return int(self._predicted[position])
        if role == ConfidenceRole:
            return None if self._predicted[position] == NOT_CLASSIFIED else float(self._confidence[position])
        if role == DoubtRole:
            doubt = self._doubts.get(int(self._ids[position]))
            return doubt if doubt is not None and doubt.labelled == self._labels[position] else None
        if role in (Qt.ItemDataRole.DisplayRole, TitleRole, PathRole, Qt.ItemDataRole.ToolTipRole):
            info = self._row_info(index.row())
            if info is None:
                return None
            if role == TitleRole:
                return info.title
            if role == PathRole:
                return info.path
            if role == Qt.ItemDataRole.ToolTipRole:
                return f"{info.display_name}\n{info.path}"
            return info.display_name
        return None

    def mimeTypes(self) -> list[str]:
        return [MIME_TYPE]

    def mimeData(self, indexes) -> QMimeData:
        ids = list(dict.fromkeys(int(self.data(i, ItemIdRole)) for i in indexes if i.isValid()))
        return item_ids_mime(self.store.path, ids)

    def supportedDragActions(self) -> Qt.DropAction:
        return Qt.DropAction.CopyAction

    # --- state from the session -------------------------------------------------------

    def set_items(self, item_ids: np.ndarray, labels: dict[int, int]) -> None:
        """The catalog's (sorted) item ids; labels and predictions are re-aligned to them."""
        self._ids = np.asarray(item_ids, np.int64)
        self._labels = np.full(len(self._ids), NO_LABEL, np.int64)
        self._predicted = np.full(len(self._ids), NOT_CLASSIFIED, np.int64)
        self._confidence = np.zeros(len(self._ids), np.float32)
        self._score_row = np.full(len(self._ids), -1, np.int64)
        self._search_texts = self._build_search_texts()
        self._put_labels(labels)
        self._put_predictions(self.predictions)
        self._refresh(force_reset=True)

    def apply_labels(self, changes: dict[int, int | None]) -> None:
        self._put_labels(changes)
        self._refresh()

    def set_predictions(self, predictions: CatalogPredictions | None) -> None:
        self.predictions = predictions
        self._put_predictions(predictions)
        self._refresh()

    def add_search_texts(self, texts: dict[int, str]) -> None:
        """Titles of items, loaded in the background for the search box."""
        self._search_source.update(texts)
        self._search_texts = self._build_search_texts()
        if self.search:
            self._refresh()

    def title_changed(self, item_id: int, title: str | None) -> None:
        """Show a title the user just typed, before the edit lane has written it."""
        info = self.item_info(item_id)
        if info is not None:
            self._rows[item_id] = replace(info, title=title or None)
            self._search_source[item_id] = self._rows[item_id].display_name
        self._search_texts = self._build_search_texts()
        row = self.row_of(item_id)
        if row is not None:
            index = self.index(row)
            self.dataChanged.emit(index, index)

    def forget_rows(self) -> None:
        """Drop cached titles and paths, e.g. after a titles file changed many of them."""
        self._rows.clear()

    def set_view(self, filter: str | int | None = None, search: str | None = None, sort: str | None = None) -> None:
        if filter is not None:
            self.filter = filter
        if search is not None:
            self.search = search.strip().casefold()
        if sort is not None:
            self.sort = sort
        self._refresh()

    def set_list(self, name: str, item_ids) -> None:
        """A named list of items (similar ones, suggestions); filtering by its name shows them in its order."""
        self.lists[name] = np.asarray(item_ids, np.int64)
        if self.filter == name:
            self._refresh()

    def notify_changed(self, index: QModelIndex | QPersistentModelIndex) -> None:
        """Repaint one row, e.g. when its thumbnail has arrived."""
        if index.isValid():
            self.dataChanged.emit(QModelIndex(index), QModelIndex(index))

    # --- questions from the UI --------------------------------------------------------

    def item_id(self, row: int) -> int:
        return int(self._ids[self._visible[row]])

    def item_ids(self, rows) -> list[int]:
        return self._ids[self._visible[np.asarray(rows, np.int64)]].tolist()

    def visible_ids(self) -> np.ndarray:
        return self._ids[self._visible]

    def all_ids(self) -> np.ndarray:
        return self._ids

    def row_of(self, item_id: int) -> int | None:
        rows = np.flatnonzero(self._ids[self._visible] == item_id)
        return int(rows[0]) if len(rows) else None

    def effective_ids(self, category_id: int) -> np.ndarray:
        """Items that are examples of a category or, unlabelled, predicted to be in it."""
        return self._ids[self._in_category(category_id)]

    def item_info(self, item_id: int) -> RowInfo | None:
        if item_id not in self._rows:
            self._fetch_rows([item_id])
        return self._rows.get(item_id)

    def scores_of(self, item_id: int) -> list[tuple[int, float]]:
        """Each category's score for one item, best first; empty before it is classified."""
        where, found = _positions(self._ids, np.array([item_id]))
        if self.predictions is None or not found[0] or self._score_row[where[0]] < 0:
            return []
        scores = self.predictions.scores[self._score_row[where[0]]]
        order = np.argsort(-scores, kind="stable")
        return [(int(self.predictions.classes[j]), float(scores[j])) for j in order]

    def likely_wrong_ids(self) -> np.ndarray:
        """Labelled examples that scored low for their own category when held out, worst first;
        one relabelled since the fit that found it is no longer listed."""
        if not self._doubts or not len(self._ids):
            return np.empty(0, np.int64)
        ids = np.fromiter(self._doubts, np.int64, len(self._doubts))
        labelled = np.fromiter((d.labelled for d in self._doubts.values()), np.int64, len(self._doubts))
        where, found = _positions(self._ids, ids)
        return ids[found & (self._labels[where] == labelled)]

    def counts(self) -> Counts:
        """Kept until labels or predictions change: the panel and the status bar both ask after each."""
        if self._counts is None:
            unlabelled = self._labels == NO_LABEL
            predicted = self._predicted[unlabelled]
            self._counts = Counts(
                _tally(self._labels[~unlabelled]),
                _tally(predicted[predicted >= 0]),
                int((predicted == UNASSIGNED).sum()),
                int((predicted == NOT_CLASSIFIED).sum()),
            )
        return self._counts

    # --- internals --------------------------------------------------------------------

    def _put_labels(self, changes: dict[int, int | None]) -> None:
        self._counts = None
        if not changes or not len(self._ids):
            return
        ids = np.fromiter(changes.keys(), np.int64, len(changes))
        values = np.fromiter((NO_LABEL if v is None else v for v in changes.values()), np.int64, len(changes))
        where, found = _positions(self._ids, ids)
        self._labels[where[found]] = values[found]

    def _put_predictions(self, predictions: CatalogPredictions | None) -> None:
        self._counts = None
        self._predicted.fill(NOT_CLASSIFIED)
        self._confidence.fill(0)
        self._score_row.fill(-1)
        report = predictions.quality if predictions is not None else None
        self._doubts = {w.item_id: w for w in report.likely_wrong} if report is not None else {}
        if predictions is None or not len(self._ids):
            return
        where, found = _positions(self._ids, np.asarray(predictions.item_ids, np.int64))
        self._predicted[where[found]] = np.asarray(predictions.category_ids, np.int64)[found]
        self._confidence[where[found]] = np.asarray(predictions.confidence, np.float32)[found]
        self._score_row[where[found]] = np.flatnonzero(found)

    def _in_category(self, category_id: int) -> np.ndarray:
        return (self._labels == category_id) | ((self._labels == NO_LABEL) & (self._predicted == category_id))

    def _build_search_texts(self) -> list[str]:
        source = self._search_source
        return [source.get(int(i), "").casefold() for i in self._ids]

    def _visible_positions(self) -> np.ndarray:
        if isinstance(self.filter, str) and self.filter in self.lists:
            return self._listed_positions(self.lists[self.filter])
        if self.filter == FILTER_LIKELY_WRONG:
            return self._listed_positions(self.likely_wrong_ids())
        keep = np.ones(len(self._ids), bool)
        if self.filter == FILTER_UNASSIGNED:
            keep = (self._labels == NO_LABEL) & (self._predicted == UNASSIGNED)
        elif self.filter == FILTER_LABELLED:
            keep = self._labels != NO_LABEL
        elif self.filter == FILTER_NOT_CLASSIFIED:
            keep = self._predicted == NOT_CLASSIFIED
        elif isinstance(self.filter, int):
            keep = self._in_category(self.filter)
        if self.search:
            keep &= np.fromiter((self.search in t for t in self._search_texts), bool, len(self._ids))
        positions = np.flatnonzero(keep)
        if self.sort != SORT_CATALOG:
            key = np.where(self._predicted[positions] == NOT_CLASSIFIED, np.inf, self._confidence[positions])
            if self.sort == SORT_MOST_CONFIDENT:
                key = np.where(np.isinf(key), np.inf, -key)
            positions = positions[np.argsort(key, kind="stable")]
        return positions

    def _listed_positions(self, item_ids: np.ndarray) -> np.ndarray:
        """A list's items in its own order, narrowed by the search; the sort does not apply."""
        where, found = _positions(self._ids, item_ids)
        positions = where[found]
        if self.search:
            positions = positions[np.fromiter((self.search in self._search_texts[p] for p in positions), bool, len(positions))]
        return positions.astype(np.int64)

    def _refresh(self, force_reset: bool = False) -> None:
        visible = self._visible_positions()
        if not force_reset and np.array_equal(visible, self._visible):
            if len(visible):
                self.dataChanged.emit(self.index(0), self.index(len(visible) - 1))
            return
        self.beginResetModel()
        self._visible = visible
        self.endResetModel()

    def _row_info(self, row: int) -> RowInfo | None:
        item_id = int(self._ids[self._visible[row]])
        if item_id not in self._rows:
            start = max(0, row - ROW_BLOCK // 4)
            self._fetch_rows(self._ids[self._visible[start : start + ROW_BLOCK]].tolist())
        return self._rows.get(item_id)

    def _fetch_rows(self, item_ids: list[int]) -> None:
        for item_id, item in self.store.items([i for i in item_ids if i not in self._rows]).items():
            self._rows[item_id] = RowInfo(item.title, item.path, item.width, item.height)
