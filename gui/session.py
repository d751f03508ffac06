"""One open catalog: what the UI shows of it, and the background work that keeps that current.

The UI reads a mirror (categories, labels, the latest predictions) and never waits for the
database: edits change the mirror at once and are written on the `live` lane, which also refits
and re-scores the catalog after each change (debounced) and persists predictions when the user
pauses. Long work (import, embedding, loading titles) runs on the `jobs` lane, so a fit never
queues behind an hour of embedding. Both lanes open their own Store; the GUI thread's Store only
reads (SQLite's WAL lets it read while a lane writes).

The session keeps the mirror, the edits and the live predictions; the rest is in modules of its
own that run on these lanes and answer through the session's signals: gui/intake.py (import,
titles, embedding), gui/training.py (meta-learning per category set, fine-tuning),
gui/discovery.py (similar items, suggestions, near-duplicates, an image tried), gui/exports.py.
"""
from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QObject, QTimer, Signal, Slot
from PySide6.QtGui import QUndoStack

from protoshelf.core.constants import DEFAULT_BACKBONE, DEFAULT_METHOD, DEFAULT_THRESHOLD
from protoshelf.core.store import CategoryRow, Store, StoreError, name_key, validate_category_name
from protoshelf.gui import discovery, exports, jobs
from protoshelf.gui.catalog_model import CatalogModel
from protoshelf.gui.commands import (
    CreateCategory, DeleteCategory, LabelItems, RecolourCategory, RenameCategory, ReorderCategories, SetTitle,
)
from protoshelf.gui.intake import Intake
from protoshelf.gui.training import Training
from protoshelf.gui.workers import Task, TaskKind, TaskRunner, failure_text

if TYPE_CHECKING:
    import numpy as np

    from protoshelf.core.classify import CatalogPredictions
    from protoshelf.gui.export_dialog import ExportRequest


def elided(name: str, width: int = 60) -> str:
    """A category name short enough for a menu: a shop's category path may run to 750 characters."""
    return name if len(name) <= width else name[: width - 1] + "…"


FIT_DELAY_MS = 150
SAVE_DELAY_MS = 3000


class CatalogSession(QObject):
    categories_changed = Signal()
    labels_changed = Signal()
    predictions_changed = Signal()
    items_changed = Signal()
    modalities_changed = Signal(list)
    notice = Signal(str)
    problem = Signal(str, str)
    import_finished = Signal(object)
    export_finished = Signal(str, int)
    similar_found = Signal(int, list)
    suggestions_ready = Signal(list)
    duplicates_found = Signal(list)
    backbone_changed = Signal(str)
    model_loaded = Signal(object)
    model_failed = Signal()
    image_tried = Signal(list)

    def __init__(
        self,
        path: str | Path,
        *,
        backbone: str = DEFAULT_BACKBONE,
        method: str = DEFAULT_METHOD,
        device: str = "auto",
        threshold: float = DEFAULT_THRESHOLD,
        modality: str | None = None,
        embed_titles: bool = True,
        extractor=None,
        fit_delay_ms: int = FIT_DELAY_MS,
        save_delay_ms: int = SAVE_DELAY_MS,
        parent: QObject | None = None,
    ):
        super().__init__(parent)
        self.path = Path(path).expanduser().resolve()
        self.store = Store(self.path)
        self.backbone, self.method, self.device = backbone, method, device
        self.threshold, self.modality = threshold, modality
        self.embed_titles = embed_titles
        self.jobs = TaskRunner(self.path, "jobs", self)
        self.live = TaskRunner(self.path, "live", self)
        for lane in (self.jobs, self.live):
            lane.problem.connect(self.problem)
        if extractor is not None:
            for lane in (self.jobs, self.live):
                lane.context.cache[jobs.extractor_key(backbone, device)] = extractor
        self.undo_stack = QUndoStack(self)
        self.model = CatalogModel(self.store, self)
        self.categories: list[CategoryRow] = self.store.categories()
        self.labels: dict[int, int] = self.store.labels()
        self.predictions: CatalogPredictions | None = None
        self.modalities: list[str] = []
        self.model_info: jobs.ModelInfo | None = None
        self.recent_categories: list[int] = []
        self.closed = False
        self._edits = 0
        """Edits sent to the catalog so far (and labels a job wrote and the window then showed): a
        catch-up read before the latest one is out of date."""
        self._category_edits = 0
        """Of those, the edits that change the category list."""
        self._model_failure: str | None = None
        """The first line of what the failed model load said; None while it has not failed."""
        self._predictions_saved = True
        self.embeddings_version = 0
        """Raised whenever vectors were added, so the lanes reload theirs before the next use."""
        self.intake = Intake(self)
        self.training = Training(self)
        self.fit_delay_ms = fit_delay_ms
        self._fit_timer = QTimer(self, singleShot=True)
        self._fit_timer.timeout.connect(self._start_fit)
        self._save_timer = QTimer(self, singleShot=True, interval=save_delay_ms)
        self._save_timer.timeout.connect(self.save_predictions)
        self.model.set_items(self.store.item_ids(), self.labels)

    def start(self) -> None:
        """Bring the catalog up to date: load torch and the model behind the shown window; once it
        is loaded, predict from what is embedded and embed the rest. One lane imports torch before
        the other uses it: two threads importing torch at once can fail in torchvision's circular
        imports ("partially initialized module")."""
        self.live.run("Loading the model", jobs.load_model, self.device, kind=TaskKind.LOAD,
                      on_success=self._on_model_loaded, failure_title="The model could not be loaded",
                      on_failure=self._on_model_failed)
        self.refresh_search_texts()

    # --- reading the mirror -----------------------------------------------------------

    def category(self, category_id: int) -> CategoryRow:
        return next(c for c in self.categories if c.id == category_id)

    def category_at(self, number: int) -> CategoryRow | None:
        """The category with this number (its key), as shown in the panel; numbers stay put when
        another category is deleted, so a key keeps meaning what it meant."""
        return next((c for c in self.categories if c.position == number), None)

    def device_description(self) -> str:
        if self.model_info is None:
            return "Loading the model…" if self._model_failure is None else "The model could not be loaded."
        from protoshelf.core.backbones import BackboneError, describe_device, resolve_device

        try:
            return describe_device(resolve_device(self.device))
        except BackboneError as exc:
            return str(exc)

    def _on_model_loaded(self, info: jobs.ModelInfo) -> None:
        self.model_info = info
        self.model_loaded.emit(info)
        self.schedule_fit(now=True)
        self.embed()

    def _on_model_failed(self, error: BaseException) -> None:
        """Already reported; fits and embedding still run and say what goes wrong in them."""
        self._model_failure = failure_text(error).partition("\n")[0]
        self.model_failed.emit()
        self.schedule_fit(now=True)
        self.embed()

    def report_model_task_failure(self, title: str, error: BaseException) -> None:
        """A fit's or the embedding's failure. One the failed model load already explained (torch
        will not import, so they fail the same way) goes to the status bar, not into a dialog of
        its own; other tasks (edits, exports, imports) always get their dialog."""
        details = failure_text(error)
        summary = details.partition("\n")[0]
        if summary and summary == self._model_failure:
            self.notice.emit(f"{title}: {summary}")
        else:
            self.problem.emit(title, details)

    @property
    def busy(self) -> bool:
        return self.jobs.busy or self.live.busy or self._fit_timer.isActive()

    # --- edits (undoable) -------------------------------------------------------------

    def label(self, item_ids, category_id: int | None, text: str | None = None) -> None:
        if category_id is not None and not any(c.id == category_id for c in self.categories):
            self.notice.emit("That category was deleted meanwhile; nothing was labelled.")
            return
        self._remember(category_id)
        ids = [int(i) for i in item_ids if self.labels.get(int(i)) != category_id]
        if ids:
            self.undo_stack.push(LabelItems(self, ids, category_id, text or self._label_text(len(ids), category_id)))

    def show_labelled(self, item_ids, category_id: int, before: dict[int, int | None], edits_at_start: int) -> None:
        """Show labels a job already wrote (an import onto a category), as one undo step; `before`
        is what those items were labelled before, as the job read it; `edits_at_start`: this
        window's edit count when the job began."""
        self._remember(category_id)
        ids = [int(i) for i in item_ids]
        if ids:
            self._edits += 1  # a catalog read from before the job's write must not take them off again
            self.undo_stack.push(LabelItems(self, ids, category_id, self._label_text(len(ids), category_id), before,
                                            edits_at_start))

    @property
    def edits(self) -> int:
        """How many edits this window has sent (or shown from a job) so far."""
        return self._edits

    def show_stored_labels(self, item_ids) -> Task | None:
        """Show what the catalog holds for these items, read on the live lane after this window's
        edits (dropped if the user edits again meanwhile, as a catch-up is)."""
        if self.closed:
            return None
        ids = [int(i) for i in item_ids]
        return self.live.run("Reading labels", jobs.labels_of, ids, kind=TaskKind.CATCH_UP,
                             on_success=partial(self._stored_labels_read, self._edits, ids))

    def _stored_labels_read(self, edits: int, item_ids: list[int], labels: dict[int, int]) -> None:
        if edits == self._edits:
            self.apply_labels({i: labels.get(i) for i in item_ids})

    def _remember(self, category_id: int | None) -> None:
        if category_id is not None:
            self.recent_categories = [category_id, *(c for c in self.recent_categories if c != category_id)][:20]

    def _label_text(self, count: int, category_id: int | None) -> str:
        """The undo step's name, with a long category path cut short for the Edit menu."""
        what = "Unlabel" if category_id is None else f"Label as {elided(self.category(category_id).name)}:"
        return f"{what} {count} item{'s' if count != 1 else ''}"

    def create_category(self, name: str, colour: str | None = None, examples: list[int] = ()) -> None:
        """`examples` are labelled with the new category in the same undo step."""
        name = self._checked_name(name)
        self.undo_stack.push(CreateCategory(self, name, colour, list(examples)))

    def rename_category(self, category_id: int, name: str) -> None:
        name = self._checked_name(name, category_id)
        if name != self.category(category_id).name:
            self.undo_stack.push(RenameCategory(self, category_id, name))

    def recolour_category(self, category_id: int, colour: str) -> None:
        self.undo_stack.push(RecolourCategory(self, category_id, colour))

    def delete_category(self, category_id: int) -> None:
        name, count = self.category(category_id).name, sum(c == category_id for c in self.labels.values())
        self.undo_stack.push(DeleteCategory(self, category_id))
        examples = f" and its {count:,} example{'s' if count != 1 else ''}" if count else ""
        self.notice.emit(f"Deleted {name!r}{examples}; Edit ▸ Undo (Ctrl+Z) brings them back.")

    def reorder_categories(self, category_ids: list[int]) -> None:
        """The panel's drag: these categories in this order, on the numbers they hold between them."""
        if list(category_ids) != [c.id for c in self.categories if c.id in set(category_ids)]:
            self.undo_stack.push(ReorderCategories(self, list(category_ids)))

    def _checked_name(self, name: str, category_id: int | None = None) -> str:
        """Refuse a bad or taken name here, before a command is pushed (raises StoreError)."""
        name = validate_category_name(name)
        for other in self.categories:  # compared as the store compares them: case, width and invisible marks aside
            if name_key(other.name) == name_key(name) and other.id != category_id:
                raise StoreError(f"A category named {other.name!r} already exists.")
        return name

    def set_title(self, item_id: int, title: str) -> None:
        info = self.model.item_info(item_id)
        title = title.strip()
        if info is not None and title != (info.title or ""):
            self.undo_stack.push(SetTitle(self, item_id, info.title or "", title))

    # --- used by the commands ---------------------------------------------------------

    def apply_labels(self, changes: dict[int, int | None]) -> None:
        """Show labels (None: unlabelled). Items already shown so are left out, and with nothing
        left nothing is redrawn or refitted: an undo shows its labels at once and again once
        written, and a catch-up passes every label it read."""
        changes = {i: c for i, c in changes.items() if self.labels.get(i) != c}
        if not changes:
            return
        for item_id, category_id in changes.items():
            if category_id is None:
                self.labels.pop(item_id, None)
            else:
                self.labels[item_id] = category_id
        self.model.apply_labels(changes)
        self.labels_changed.emit()
        self.schedule_fit()

    def apply_categories(self, categories: list[CategoryRow]) -> None:
        """Show this category list before an edit is written (a delete, its undo)."""
        self.categories = categories
        self.categories_changed.emit()
        self.schedule_fit()

    def edit(self, change, categories: bool = False, embeds: bool = False, then=None) -> Task:
        """Write a change on the live lane, after every earlier edit and before the next fit.

        `categories`: re-read the category list afterwards; `embeds`: embed what the edit made stale;
        `then`: called on the GUI thread once the change is written.
        """
        self.live.cancel(kind=TaskKind.SAVE)  # a save of a million predictions must not hold a label back
        self._edits += 1
        self._category_edits += int(categories)
        return self.live.run(
            "Saving changes", jobs.edit, change, categories, kind=TaskKind.EDIT,
            failure_title="A change could not be saved", on_failure=lambda _error: self.reload(),
            on_success=partial(self._edited, self._category_edits, embeds, then),
        )

    def _edited(self, category_edits: int, embeds: bool, then, categories: list[CategoryRow] | None) -> None:
        """`categories`: the list the edit left, shown unless a later category edit was sent
        meanwhile: a delete shown at once must not come back with the read of an earlier edit."""
        if categories is not None and category_edits == self._category_edits:
            self.apply_categories(categories)
        if then is not None:
            then()
        if embeds:
            self.embed()

    def apply_title(self, item_id: int, title: str) -> None:
        """Used by SetTitle: show the title now, write it (and re-embed it) on the edit lane."""
        self.edit(lambda store: store.set_title(item_id, title), embeds=self.embed_titles)
        self.model.title_changed(item_id, title)

    def reload(self, then: Callable[[], None] | None = None) -> Task | None:
        """Re-read categories, labels and items, e.g. after a failed edit or a product feed, on the
        live lane after this window's own edits; `then()` once shown. A read older than an edit
        the user made meanwhile is read again."""
        if self.closed:
            return None
        return self.live.run("Reading the catalog", jobs.catalog_state, kind=TaskKind.CATCH_UP,
                             on_success=partial(self._reloaded, self._edits, then))

    def _reloaded(self, edits: int, then: Callable[[], None] | None, state: jobs.CatalogState) -> None:
        if edits != self._edits:
            self.reload(then)
            return
        self.categories, self.labels = state.categories, state.labels
        self.model.set_items(state.item_ids, self.labels)
        self.categories_changed.emit()
        self.labels_changed.emit()
        self.items_changed.emit()
        self.schedule_fit()
        if then is not None:
            then()

    def catch_up(self) -> Task | None:
        """Take in what another window or the command line wrote to the catalog (labels, categories,
        new items) since this window read it; the window calls this when it becomes active again.
        Read on the live lane, after this window's own edits; if the user edits meanwhile, the
        read is dropped (theirs is newer) and the next catch-up brings the rest. Not undoable: it
        is another program's change, which this window only shows."""
        if self.closed:
            return None
        return self.live.run(
            "Reading the catalog", jobs.catalog_state, len(self.model.all_ids()), kind=TaskKind.CATCH_UP,
            on_success=partial(self._caught_up, self._edits),
        )

    def _caught_up(self, edits: int, state: jobs.CatalogState) -> None:
        if edits != self._edits:
            return
        shown = [(c.id, c.name, c.colour, c.position) for c in self.categories]
        if [(c.id, c.name, c.colour, c.position) for c in state.categories] != shown:
            self.apply_categories(state.categories)
        if state.item_ids is not None:
            self._show_items(state.item_ids)
        self.apply_labels({i: state.labels.get(i) for i in self.labels.keys() | state.labels.keys()})

    def refresh_items(self, then: Callable[[], None] | None = None) -> Task | None:
        """Show the items the catalog holds now (after an import), read on the live lane."""
        if self.closed:
            return None
        return self.live.run("Reading the catalog's items", jobs.item_ids, kind=TaskKind.CATCH_UP,
                             on_success=partial(self._show_items, then=then))

    def _show_items(self, item_ids: np.ndarray, then: Callable[[], None] | None = None) -> None:
        self.model.set_items(item_ids, self.labels)
        self.items_changed.emit()
        if then is not None:
            then()

    # --- live predictions -------------------------------------------------------------

    def schedule_fit(self, now: bool = False) -> None:
        """Refit at once after a lone change; while a fit is due or running, wait until the
        changes pause for `fit_delay_ms`, so a burst of edits costs one more fit, not one each."""
        settled = not self._fit_timer.isActive() and not self._fit_pending()
        self._fit_timer.start(0 if now or settled else self.fit_delay_ms)

    def _fit_pending(self) -> bool:
        return any(t.kind == TaskKind.FIT for t in self.live.pending)

    @Slot()
    def _start_fit(self) -> None:
        if self.closed:
            return
        self.live.cancel(kind=TaskKind.FIT)
        self.live.cancel(kind=TaskKind.SAVE)
        self._save_timer.stop()
        if self.model_info is None and self._model_failure is None:  # the methods' kinds come with the model,
            return  # loaded on a worker (torch): asking here would import torch on the GUI thread; it fits
        meta = self.model_info is not None and self.method in self.model_info.meta_learners
        request = self.fit_request(self.training.meta_states_for_fit() if meta else ())
        self.live.run("Updating predictions", jobs.fit, request, kind=TaskKind.FIT,
                      on_success=partial(self._on_fitted, request),
                      on_failure=partial(self.report_model_task_failure, "Predictions could not be updated"))

    def fit_request(self, meta_states: tuple = ()) -> jobs.FitRequest:
        return jobs.FitRequest(self.backbone, self.method, self.threshold, self.modality, self.embeddings_version,
                               meta_states, self.device)

    def embeddings_changed(self) -> None:
        """New vectors were saved: the lanes reload theirs, and the predictions are refitted."""
        self.embeddings_version += 1
        self.schedule_fit(now=True)

    def _on_fitted(self, request: jobs.FitRequest, result: jobs.FitResult) -> None:
        if result.modalities != self.modalities:
            self.modalities = result.modalities
            self.modalities_changed.emit(self.modalities)
        predictions = result.predictions
        if predictions is not None and request.threshold != self.threshold:
            predictions = predictions.with_threshold(self.threshold)
        self._set_predictions(predictions)

    def _set_predictions(self, predictions: CatalogPredictions | None) -> None:
        self.predictions = predictions
        self.model.set_predictions(predictions)
        self.predictions_changed.emit()
        self._predictions_saved = predictions is None
        if predictions is not None:
            self._save_timer.start()

    def set_threshold(self, threshold: float) -> None:
        """Re-decide with the new threshold from the scores already there: no refit."""
        self.threshold = threshold
        if self.predictions is not None:
            self._set_predictions(self.predictions.with_threshold(threshold))

    def set_method(self, method: str) -> None:
        self.method = method
        self.schedule_fit(now=True)

    def set_modality(self, modality: str | None) -> None:
        self.modality = modality
        self.schedule_fit(now=True)

    def set_backbone(self, backbone: str) -> None:
        self.backbone = backbone
        self.embed()
        self.schedule_fit(now=True)

    def set_device(self, device: str) -> None:
        self.device = device

    @Slot()
    def save_predictions(self, kind: TaskKind = TaskKind.SAVE) -> Task | None:
        """Persist the shown predictions for the CLI and export (in one transaction, on the live lane)."""
        self._save_timer.stop()
        if self._predictions_saved or self.predictions is None or self.closed:
            return None
        predictions = self.predictions
        return self.live.run(
            "Saving predictions", jobs.persist_predictions, predictions, self.backbone, self.threshold, kind=kind,
            on_success=lambda _: self._saved(predictions), on_cancel=partial(self._save_gave_way, kind),
            on_failure=lambda error: self.notice.emit(f"Predictions not saved yet: {error}"),
        )

    def _saved(self, predictions: CatalogPredictions) -> None:
        if predictions is self.predictions:
            self._predictions_saved = True

    def _save_gave_way(self, kind: TaskKind) -> None:
        """A save gave way to an edit: try again once things are quiet (a fit's result restarts the timer)."""
        if kind == TaskKind.SAVE and not self._fit_pending():
            self._save_timer.start()

    # --- background work, in modules of their own ---------------------------------------

    def embed(self) -> Task:
        return self.intake.embed()

    def import_paths(self, paths: list[str], category_id: int | None = None) -> Task:
        return self.intake.import_paths(paths, category_id)

    def import_titles(self, csv_path: str) -> Task:
        return self.intake.import_titles(csv_path)

    def refresh_search_texts(self) -> None:
        self.intake.load_search_texts(self.model.all_ids())

    def adapt_backbone(self, method: str) -> Task | None:
        return self.training.adapt_backbone(method)

    def find_similar(self, item_id: int, k: int = 48) -> Task:
        return discovery.find_similar(self, item_id, k)

    def suggest(self, n: int = 20) -> Task | None:
        return discovery.suggest(self, n)

    def find_duplicates(self, threshold: float) -> Task:
        return discovery.find_duplicates(self, threshold)

    def try_image(self, image: Path | bytes) -> Task:
        return discovery.try_image(self, image)

    def export(self, request: ExportRequest) -> Task:
        return exports.export(self, request)

    def export_duplicates(self, groups, out_path: str | Path) -> Task:
        return exports.export_duplicates(self, groups, out_path)

    def cancel(self) -> None:
        """The status bar's Cancel: stops import, embedding, duplicate search and export at the next batch."""
        for kind in (TaskKind.IMPORT, TaskKind.EMBED, TaskKind.DUPLICATES, TaskKind.BACKBONE, TaskKind.META_TRAIN):
            self.jobs.cancel(kind)
        self.live.cancel(kind=TaskKind.EXPORT)

    def close(self) -> None:
        """Stop background work, persist unsaved predictions, and release the catalog."""
        if self.closed:
            return
        self._fit_timer.stop()
        self._save_timer.stop()
        self.jobs.cancel()
        self.live.cancel(kind=TaskKind.FIT)
        self.save_predictions()
        self.closed = True
        self.jobs.close()
        self.live.close()
        self.jobs.shutdown()
        self.live.wait()
        self.live.shutdown()
        self.store.close()
