"""The main window: categories and model settings on the left, the catalog grid on the right.

The window wires widgets to one CatalogSession and shows what it reports (problems in dialogs,
notices in the status bar); it holds no catalog logic of its own.
"""
from __future__ import annotations

from functools import partial
from pathlib import Path

from PySide6.QtCore import QEvent, QModelIndex, QSettings, Qt, Signal, Slot
from PySide6.QtGui import QAction, QCloseEvent, QColor, QKeySequence
from PySide6.QtWidgets import (
    QComboBox, QFileDialog, QHBoxLayout, QInputDialog, QLabel, QLineEdit, QMainWindow, QMenu, QMessageBox, QSplitter,
    QVBoxLayout, QWidget,
)

from protoshelf.core.constants import PICTURE_DUPLICATE_THRESHOLD as DUPLICATE_THRESHOLD
from protoshelf.core.images import IMAGE_SUFFIXES

from protoshelf.gui.catalog_model import (
    DoubtRole, ItemIdRole, LabelRole, PredictionRole, FILTER_ALL, FILTER_LABELLED, FILTER_LIKELY_WRONG,
    FILTER_NOT_CLASSIFIED, FILTER_UNASSIGNED, SORT_CATALOG, SORT_LEAST_CONFIDENT, SORT_MOST_CONFIDENT,
)
from protoshelf.gui.catalog_view import EMPTY_CATALOG, NO_MATCHES, THUMB, CatalogView, describe_doubt
from protoshelf.gui.categories_panel import CategoriesPanel, swatch
from protoshelf.gui.category_picker import CategoryPicker, category_text, rank_categories
from protoshelf.gui.duplicates_dialog import DuplicatesDialog
from protoshelf.gui.export_dialog import ExportDialog
from protoshelf.gui.feed_import import FEED_FILTER, FeedImporter
from protoshelf.gui.jobs import ImportResult
from protoshelf.gui.model_controls import ModelControls
from protoshelf.gui.preview import PreviewDialog, drop_waiting_originals
from protoshelf.gui.problems_dialog import ProblemsDialog
from protoshelf.gui.quality_dialog import QualityDialog
from protoshelf.gui.session import CatalogSession
from protoshelf.gui.task_status import TaskStatus
from protoshelf.gui.thumbnails import ThumbnailCache
from protoshelf.gui.try_image import TryImage

LABEL_MENU_ROWS = 15
IMAGE_FILTER = f"Images ({' '.join('*' + suffix for suffix in sorted(IMAGE_SUFFIXES))})"
CATALOG_FILTER = "ProtoShelf catalogs (*.sqlite *.db);;All files (*)"
SHOW_SUGGESTED = "suggested"
SHOW_SIMILAR = "similar"
SHOW_DUPLICATES = "duplicates"


class MainWindow(QMainWindow):
    catalog_requested = Signal(str)

    def __init__(self, session: CatalogSession, settings: QSettings | None = None):
        super().__init__()
        self.session = session
        self.feed_importer = FeedImporter(session, self)
        self.settings = settings
        self.suggestions: dict[int, object] = {}
        self.similar_title: str | None = None
        self.duplicate_groups: list = []
        self._shown_filter = None
        self.setWindowTitle(f"ProtoShelf — {session.path.stem}")
        self.thumbnails = ThumbnailCache(session.store, THUMB, parent=self)

        self.view = CatalogView(self.thumbnails)
        self.view.setModel(session.model)
        self.panel = CategoriesPanel(session)
        self.controls = ModelControls(session)

        self.filter = QComboBox()
        self.search = QLineEdit(placeholderText="Search titles…", clearButtonEnabled=True)
        self.search.setMinimumWidth(220)
        self.sort = QComboBox()
        for text, value in (("Catalog order", SORT_CATALOG), ("Least confident first", SORT_LEAST_CONFIDENT),
                            ("Most confident first", SORT_MOST_CONFIDENT)):
            self.sort.addItem(text, value)
        self.count_label = QLabel()
        self.filter.currentIndexChanged.connect(self._apply_view)
        self.search.textChanged.connect(self._apply_view)
        self.sort.currentIndexChanged.connect(self._apply_view)

        bar = QHBoxLayout()
        bar.addWidget(QLabel("Show"))
        bar.addWidget(self.filter)
        bar.addWidget(self.search, 1)
        bar.addWidget(QLabel("Sort"))
        bar.addWidget(self.sort)
        bar.addWidget(self.count_label)
        right = QWidget()
        right_layout = QVBoxLayout(right)
        right_layout.setContentsMargins(4, 4, 4, 0)
        right_layout.addLayout(bar)
        right_layout.addWidget(self.view, 1)
        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(8, 8, 4, 0)
        left_layout.addWidget(self.panel, 1)
        left_layout.addWidget(self.controls)
        self.try_image = TryImage(session)
        left_layout.addWidget(self.try_image)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(left)
        self.splitter.addWidget(right)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([360, 920])
        self.setCentralWidget(self.splitter)

        self.task_status = TaskStatus(session)
        self.summary = QLabel()
        self.statusBar().addPermanentWidget(self.task_status)
        self.statusBar().addPermanentWidget(self.summary)
        self._build_menus()

        self.view.assign_requested.connect(self.assign_nth)
        self.view.unlabel_requested.connect(self.unlabel_selection)
        self.view.accept_requested.connect(self.accept_suggestion)
        self.view.similar_requested.connect(session.find_similar)
        self.view.selection_left_view.connect(self._on_selection_left_view)
        self.view.new_category_requested.connect(self.new_category_from_selection)
        self.view.pick_requested.connect(self.pick_category)
        self.view.extend_menu = self._add_label_menu
        self.view.selectionModel().currentChanged.connect(self._explain_suggestion)
        session.similar_found.connect(self._show_similar)
        session.suggestions_ready.connect(self._show_suggestions)
        session.duplicates_found.connect(self._show_duplicates)
        session.model.set_list(SHOW_SUGGESTED, [])
        self.view.files_dropped.connect(self._import_unlabelled)
        self.view.doubleClicked.connect(self.open_preview)
        self.panel.filter_requested.connect(self.show_filter)
        session.categories_changed.connect(self._on_categories_changed)
        session.model.modelReset.connect(self._update_count)
        session.notice.connect(self._show_notice)
        session.problem.connect(self._show_problem)
        session.import_finished.connect(self._on_import_finished)
        session.predictions_changed.connect(self._update_summary)
        session.predictions_changed.connect(self._update_likely_wrong_count)
        session.labels_changed.connect(self._update_likely_wrong_count)
        session.predictions_changed.connect(self._suggest_more_when_worked_through)
        session.labels_changed.connect(self._update_summary)
        session.model_loaded.connect(self._on_model_loaded)
        if session.model_info is None:
            self.statusBar().showMessage("Loading the model in the background… the grid can be used meanwhile.")
        self._on_categories_changed()
        self._update_count()
        self._update_summary()

        if settings is not None and settings.contains("window/geometry"):
            self.restoreGeometry(settings.value("window/geometry"))
            self.splitter.restoreState(settings.value("window/splitter"))
        else:
            self.resize(1320, 840)

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        actions = (
            ("&New catalog…", QKeySequence.StandardKey.New, self.new_catalog),
            ("&Open catalog…", QKeySequence.StandardKey.Open, self.open_catalog),
            None,
            ("Import &folder…", "Ctrl+I", self.import_folder),
            ("Import f&iles…", "Ctrl+Shift+I", self.import_files),
            ("Import &titles CSV…", None, self.import_titles),
            ("Import product f&eed…", None, self.import_feed),
            ("&Locate missing images…", None, self.locate_missing),
            None,
            ("&Export CSV…", "Ctrl+E", self.export_csv),
            None,
            ("&Quit", QKeySequence.StandardKey.Quit, self.close),
        )
        for entry in actions:
            if entry is None:
                file_menu.addSeparator()
                continue
            text, shortcut, slot = entry
            action = QAction(text, self, triggered=slot)
            if shortcut:
                action.setShortcut(QKeySequence(shortcut))
            file_menu.addAction(action)
        edit_menu = self.menuBar().addMenu("&Edit")
        self.undo_action = self.session.undo_stack.createUndoAction(self, "&Undo")
        self.undo_action.setShortcut(QKeySequence.StandardKey.Undo)
        self.redo_action = self.session.undo_stack.createRedoAction(self, "&Redo")
        self.redo_action.setShortcut(QKeySequence.StandardKey.Redo)
        edit_menu.addAction(self.undo_action)
        edit_menu.addAction(self.redo_action)
        edit_menu.addSeparator()
        edit_menu.addAction(QAction("&New category…", self, triggered=self.panel.ask_new_category))
        edit_menu.addAction(QAction("Select &all", self, shortcut=QKeySequence.StandardKey.SelectAll,
                                    triggered=self.view.selectAll))
        tools_menu = self.menuBar().addMenu("&Tools")
        self.duplicates_action = QAction("Find near-&duplicates…", self, triggered=self.find_duplicates)
        tools_menu.addAction(self.duplicates_action)
        tools_menu.addAction(QAction("Prediction &quality…", self, triggered=self.open_quality))

    # --- labelling --------------------------------------------------------------------

    @Slot(int)
    def assign_nth(self, number: int) -> None:
        category = self.session.category_at(number)
        if category is None:
            self._show_notice(f"There is no category {number}; create one in the panel on the left.")
            return
        if not self.view.selected_ids():
            self._show_notice("Nothing is selected: click an item (or use the arrow keys) first.")
            return
        self.session.label(self.view.selected_ids(), category.id)

    @Slot()
    def unlabel_selection(self) -> None:
        self.session.label(self.view.selected_ids(), None)

    @Slot()
    def pick_category(self) -> CategoryPicker | None:
        """L or /: label the selection with any category, found by typing a few letters."""
        ids = self.view.selected_ids()
        if not ids:
            self._show_notice("Select the items to label, then press L.")
            return None
        if not self.session.categories:
            self._show_notice("No categories yet: press N to make one from the selection.")
            return None
        picker = CategoryPicker(self.session.categories, self.session.recent_categories, len(ids), self)
        picker.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        picker.setWindowModality(Qt.WindowModality.WindowModal)  # the items it names stay the ones selected
        picker.chosen.connect(lambda category_id: self.session.label(ids, category_id))
        picker.show()
        self.picker = picker
        return picker

    def _add_label_menu(self, menu: QMenu) -> None:
        """Right-click ▸ Label as ▸: recent categories first, the numbered ones, then the picker for the rest."""
        label_as = menu.addMenu("Label as")
        shown = rank_categories("", self.session.categories, self.session.recent_categories)[:LABEL_MENU_ROWS]
        for category in shown:
            action = label_as.addAction(swatch(QColor(category.colour)), category_text(category).replace("&", "&&"))
            action.triggered.connect(partial(self._label_selection, category.id))
        if len(self.session.categories) > len(shown):
            label_as.addAction("Other category…\tL", self.pick_category)
        if not shown:
            label_as.addAction("New category from selection…\tN", self.new_category_from_selection)
        menu.addAction("Unlabel\t0", self.unlabel_selection)
        menu.addSeparator()

    def _label_selection(self, category_id: int) -> None:
        self.session.label(self.view.selected_ids(), category_id)

    @Slot()
    def new_category_from_selection(self) -> None:
        ids = self.view.selected_ids()
        if not ids:
            self._show_notice("Select the items that start the new category, then press N.")
            return
        self.panel.ask_new_category(examples=ids)

    @Slot(int)
    def _on_selection_left_view(self, count: int) -> None:
        what = "The selected item" if count == 1 else f"The {count:,} selected items"
        self._show_notice(f"{what} left this view; nothing is selected now. Click an item or use the arrow keys.")

    def acceptable(self, suggestion) -> bool:
        """A real prediction: above the threshold and nearer a category than to none of them."""
        return not suggestion.unfamiliar and suggestion.score >= self.session.threshold

    @Slot()
    def accept_suggestion(self) -> None:
        """Label the selected suggested items as the classifier predicts, then move on to the next item.
        An item the classifier calls unlike every category is never accepted: that would add a bad example.
        In Likely wrong examples, it relabels the selected examples as the category each looks like."""
        if self.filter.currentData() == FILTER_LIKELY_WRONG:
            self._relabel_as_looks_like()
            return
        shown = self.filter.currentData() == SHOW_SUGGESTED  # a list from another view is not on screen
        selected = [i for i in self.view.selected_ids() if i in self.suggestions] if shown else []
        chosen = {i: category for i in selected if (category := self._badge_category(i)) is not None}
        if not chosen:
            self._show_notice(
                "No prediction to accept: its badge shows no category (below the threshold, unlike every "
                "category, or labelled by you). Press a number key or L to choose one, or N: new category from "
                "this item." if selected else
                "Select a suggested item (Show: Suggested to label) to accept its prediction.")
            return
        for category_id in dict.fromkeys(chosen.values()):
            self.session.label([i for i, category in chosen.items() if category == category_id], category_id)
        rows = self.view.selected_rows()
        following = int(rows.max()) + 1 if len(rows) else 0
        if following < self.session.model.rowCount():
            self.view.setCurrentIndex(self.session.model.index(following))

    def _badge_category(self, item_id: int) -> int | None:
        """The category the item's badge shows now; None when it shows Unassigned or the item is
        nearer to no category than to its best one. Predictions refit after every label, so the
        suggestion list's own guess may be out of date."""
        model = self.session.model
        row, scores = model.row_of(item_id), model.scores_of(item_id)
        if row is None or not scores or 1.0 - sum(score for _, score in scores) > scores[0][1]:
            return None
        if model.index(row).data(LabelRole) is not None:  # labelled since: the badge shows the user's choice
            return None
        predicted = model.index(row).data(PredictionRole)
        return predicted if any(c.id == predicted for c in self.session.categories) else None

    def _relabel_as_looks_like(self) -> None:
        model, rows = self.session.model, self.view.selected_rows()
        doubts = [model.index(int(r)).data(DoubtRole) for r in rows]
        doubts = [d for d in doubts if d is not None]
        if not doubts:
            self._show_notice("Select a likely wrong example, then press A to relabel it as the category it looks like.")
            return
        for category_id in dict.fromkeys(d.predicted for d in doubts):
            self.session.label([d.item_id for d in doubts if d.predicted == category_id], category_id)

    # --- similar items, suggestions and near-duplicates --------------------------------

    @Slot(int, list)
    def _show_similar(self, item_id: int, neighbours: list) -> None:
        """The item itself first, then its nearest neighbours, most similar first."""
        info = self.session.model.item_info(item_id)
        self.similar_title = info.display_name if info is not None else f"item {item_id}"
        self.session.model.set_list(SHOW_SIMILAR, [item_id, *(n.item_id for n in neighbours)])
        self._on_categories_changed()
        self.show_filter(SHOW_SIMILAR)

    @Slot(list)
    def _show_suggestions(self, suggestions: list) -> None:
        self.suggestions = {s.item_id: s for s in suggestions}
        self.session.model.set_list(SHOW_SUGGESTED, [s.item_id for s in suggestions])
        self._update_count()
        if suggestions and self.filter.currentData() == SHOW_SUGGESTED:
            self.view.setCurrentIndex(self.session.model.index(0))

    @Slot()
    def _suggest_more_when_worked_through(self) -> None:
        """A fresh batch once every suggestion shown is labelled, from predictions that know those labels;
        a list that reshuffled after each label would move items under the cursor."""
        shown = self.filter.currentData() == SHOW_SUGGESTED
        if shown and self.suggestions and all(i in self.session.labels for i in self.suggestions):
            self.session.suggest()

    @Slot(QModelIndex)
    def _explain_suggestion(self, current: QModelIndex) -> None:
        doubt = current.data(DoubtRole) if current.isValid() else None
        if doubt is not None and self.filter.currentData() == FILTER_LIKELY_WRONG:
            names = {c.id: c.name for c in self.session.categories}
            looks = names.get(doubt.predicted, "?")
            self._show_notice(f"{describe_doubt(names, doubt)}. A or Enter relabels it as {looks}; "
                              "a number key or L chooses another.")
            return
        suggestion = self.suggestions.get(current.data(ItemIdRole)) if current.isValid() else None
        if suggestion is not None and self.filter.currentData() == SHOW_SUGGESTED:
            names = {c.id: c.name for c in self.session.categories}
            keys = ("A or Enter accepts, a number key or L chooses" if self.acceptable(suggestion)
                    else "press a number key or L to choose, N: new category from this item")
            self._show_notice(f"Suggested: {suggestion.reason(names)}; {keys}.")

    @Slot()
    def find_duplicates(self) -> None:
        threshold, ok = QInputDialog.getDouble(
            self, "Find near-duplicates", "Cosine similarity at least:", DUPLICATE_THRESHOLD, 0.5, 1.0, 2
        )
        if ok:
            self._duplicate_threshold = threshold
            self.session.find_duplicates(threshold)

    @Slot(list)
    def _show_duplicates(self, groups: list) -> None:
        threshold = getattr(self, "_duplicate_threshold", DUPLICATE_THRESHOLD)
        if not groups:
            self._show_notice(f"No near-duplicates at similarity {threshold:.2f} or more.")
            return
        self.duplicate_groups = groups
        self.session.model.set_list(SHOW_DUPLICATES, [i for g in groups for i in g.item_ids])
        self._on_categories_changed()
        dialog = DuplicatesDialog(self.session, groups, threshold, self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show_in_grid.connect(lambda: self.show_filter(SHOW_DUPLICATES))
        dialog.show()
        self.duplicates_dialog = dialog

    @Slot(list)
    def _import_unlabelled(self, paths: list[str]) -> None:
        self.session.import_paths(paths)

    # --- the grid's filter, search and sort -------------------------------------------

    @Slot()
    def _on_categories_changed(self) -> None:
        self.view.delegate.set_categories({c.id: (c.name, QColor(c.colour)) for c in self.session.categories})
        current = self.filter.currentData() or FILTER_ALL
        self.filter.blockSignals(True)
        self.filter.clear()
        for text, value in (("All items", FILTER_ALL), ("Unassigned", FILTER_UNASSIGNED),
                            ("Labelled examples", FILTER_LABELLED), (self._likely_wrong_text(), FILTER_LIKELY_WRONG),
                            ("Not classified yet", FILTER_NOT_CLASSIFIED)):
            self.filter.addItem(text, value)
        self.filter.addItem("Suggested to label", SHOW_SUGGESTED)
        if self.similar_title is not None:
            self.filter.addItem(f"Similar to {self.similar_title}", SHOW_SIMILAR)
        if self.duplicate_groups:
            self.filter.addItem("Near-duplicates", SHOW_DUPLICATES)
        self.filter.insertSeparator(self.filter.count())
        for category in self.session.categories:
            self.filter.addItem(category_text(category), category.id)
        position = self.filter.findData(current)
        self.filter.setCurrentIndex(max(position, 0))
        self.filter.blockSignals(False)
        if position < 0:
            self._apply_view()
        self.view.viewport().update()

    def _likely_wrong_text(self) -> str:
        return f"Likely wrong examples ({len(self.session.model.likely_wrong_ids()):,})"

    @Slot()
    def _update_likely_wrong_count(self) -> None:
        self.filter.setItemText(self.filter.findData(FILTER_LIKELY_WRONG), self._likely_wrong_text())

    @Slot(int)
    def show_likely_wrong(self, item_id: int) -> None:
        """From the quality view: the likely-wrong examples in the grid, worst first, with this one selected."""
        self.show_filter(FILTER_LIKELY_WRONG)
        row = self.session.model.row_of(item_id)
        if row is not None:
            index = self.session.model.index(row)
            self.view.setCurrentIndex(index)
            self.view.scrollTo(index)
        self.raise_()
        self.activateWindow()

    @Slot(object)
    def show_filter(self, value) -> None:
        self.filter.setCurrentIndex(max(self.filter.findData(value), 0))

    @Slot()
    def _apply_view(self) -> None:
        shown = self.filter.currentData() or FILTER_ALL
        if shown == SHOW_SUGGESTED and self._shown_filter != SHOW_SUGGESTED:
            self.session.suggest()
        self._shown_filter = shown
        self.sort.setEnabled(shown not in self.session.model.lists and shown != FILTER_LIKELY_WRONG)
        self.session.model.set_view(filter=shown, search=self.search.text(), sort=self.sort.currentData())
        self._update_count()

    @Slot()
    def _update_count(self) -> None:
        model = self.session.model
        self.count_label.setText(f"{model.rowCount():,} of {len(model.all_ids()):,} items")
        self.view.empty_text = EMPTY_CATALOG if not len(model.all_ids()) else NO_MATCHES

    @Slot()
    def _update_summary(self) -> None:
        counts = self.session.model.counts()
        parts = [f"{sum(counts.examples.values()):,} examples", f"{sum(counts.predicted.values()):,} predicted",
                 f"{counts.unassigned:,} unassigned"]
        if counts.not_classified:
            parts.append(f"{counts.not_classified:,} not classified yet")
        self.summary.setText(" · ".join(parts))

    # --- dialogs ----------------------------------------------------------------------

    @Slot(QModelIndex)
    def open_preview(self, index: QModelIndex) -> PreviewDialog:
        return self.preview_item(self.session.model.item_id(index.row()))

    @Slot(int)
    def preview_item(self, item_id: int) -> PreviewDialog:
        """Freed when closed: previews opened from the quality window were kept, 2 MB each."""
        dialog = PreviewDialog(self.session, item_id, self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()
        return dialog

    @Slot()
    def open_quality(self) -> QualityDialog:
        dialog = QualityDialog(self.session, self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.item_activated.connect(self.preview_item)
        dialog.show_in_grid.connect(self.show_likely_wrong)
        dialog.show()
        return dialog

    @Slot()
    def export_csv(self) -> None:
        default = Path(self.session.path).with_name(f"{self.session.path.stem}-predictions.csv")
        dialog = ExportDialog(self.session, default, self)
        if dialog.exec():
            self.session.export(dialog.request())

    @Slot()
    def import_feed(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Import a product feed", "", FEED_FILTER)
        if path:
            self.feed_importer.start(path)

    @Slot()
    def import_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Import a folder of images")
        if folder:
            self.session.import_paths([folder])

    @Slot()
    def import_files(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self, "Import images", "", IMAGE_FILTER)
        if files:
            self.session.import_paths(files)

    @Slot()
    def import_titles(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Import titles", "", "CSV files (*.csv)")
        if path:
            self.session.import_titles(path)

    @Slot()
    def new_catalog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "New catalog", "", CATALOG_FILTER)
        if path:
            self.catalog_requested.emit(path if Path(path).suffix else f"{path}.sqlite")

    @Slot()
    def locate_missing(self) -> None:
        from protoshelf.gui.locate_dialog import LocateMissingDialog

        self.locate_dialog = LocateMissingDialog(self.session, self)
        self.locate_dialog.show()

    @Slot()
    def open_catalog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Open catalog", "", CATALOG_FILTER)
        if path:
            self.catalog_requested.emit(path)

    @Slot(object)
    def _on_model_loaded(self, info) -> None:
        self._show_notice(f"Model loaded; {info.device_description}.")

    @Slot(str)
    def _show_notice(self, text: str) -> None:
        self.statusBar().showMessage(text, 10_000)

    @Slot(str, str)
    def _show_problem(self, title: str, details: str) -> None:
        box = QMessageBox(QMessageBox.Icon.Warning, title, title, QMessageBox.StandardButton.Close, self)
        box.setTextFormat(Qt.TextFormat.PlainText)
        box.setInformativeText(details.splitlines()[0] if details else "")
        box.setDetailedText(details)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.show()

    @Slot(object)
    def _on_import_finished(self, result: ImportResult) -> None:
        skipped = result.report.skipped
        if skipped:
            dialog = ProblemsDialog(
                "Some files were not imported",
                f"{result.report.summary()}. These files were skipped:",
                skipped, self,
            )
            dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
            dialog.show()
            self.import_problems = dialog

    def changeEvent(self, event: QEvent) -> None:
        """Back to this window (from a terminal, another window): show what they wrote to the catalog."""
        if event.type() == QEvent.Type.ActivationChange and self.isActiveWindow():
            self.session.catch_up()
        super().changeEvent(event)

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.settings is not None:
            self.settings.setValue("window/geometry", self.saveGeometry())
            self.settings.setValue("window/splitter", self.splitter.saveState())
            self.settings.setValue("catalog/last", str(self.session.path))
        self.thumbnails.shutdown()
        drop_waiting_originals()
        self.session.close()
        super().closeEvent(event)
