"""One open catalog: what the UI shows of it, and the background work that keeps that current.

The UI reads a mirror (categories, labels, the latest predictions) and never waits for the
database: edits change the mirror at once and are written on the `live` lane, which also refits
and re-scores the catalog after each change (debounced) and persists predictions when the user
pauses. Long work (import, embedding, loading titles) runs on the `jobs` lane, so a fit never
queues behind an hour of embedding. Both lanes open their own Store; the GUI thread's Store only
reads (SQLite's WAL lets it read while a lane writes).
"""
from __future__ import annotations

import time
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal, Slot
from PySide6.QtGui import QUndoStack

from protoshelf.core.constants import DEFAULT_BACKBONE, DEFAULT_METHOD, DEFAULT_THRESHOLD
from protoshelf.core.store import CategoryRow, Store, StoreError, validate_category_name
from protoshelf.gui import jobs
from protoshelf.gui.catalog_model import CatalogModel
from protoshelf.gui.commands import (
    CreateCategory, DeleteCategory, LabelItems, RecolourCategory, RenameCategory, ReorderCategories, SetTitle,
)
from protoshelf.gui.workers import Task, TaskKind, TaskRunner

if TYPE_CHECKING:
    from protoshelf.core.classify import CatalogPredictions
    from protoshelf.gui.export_dialog import ExportRequest

FIT_DELAY_MS = 150
SAVE_DELAY_MS = 3000
RELOAD_DURING_EMBEDDING_S = 15.0


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
        self._meta_states: dict[tuple, tuple] = {}
        """Meta-learners' states by category_set_key, and the latest per (backbone, method)."""
        self._predictions_saved = True
        self._embeddings_version = 0
        self._last_reload = time.monotonic()
        self.fit_delay_ms = fit_delay_ms
        self._fit_timer = QTimer(self, singleShot=True)
        self._fit_timer.timeout.connect(self._start_fit)
        self._save_timer = QTimer(self, singleShot=True, interval=save_delay_ms)
        self._save_timer.timeout.connect(self.save_predictions)
        self.model.set_items(self.store.item_ids(), self.labels)

    def start(self) -> None:
        """Bring the catalog up to date: load torch and the model behind the shown window, predict
        from what is embedded, then embed the rest."""
        self.live.run("Loading the model", jobs.load_model, self.device, kind=TaskKind.LOAD,
                      on_success=self._on_model_loaded, failure_title="The model could not be loaded")
        self._load_search_texts(self.model.all_ids())
        self.schedule_fit(now=True)
        self.embed()

    # --- reading the mirror -----------------------------------------------------------

    def category(self, category_id: int) -> CategoryRow:
        return next(c for c in self.categories if c.id == category_id)

    def category_at(self, number: int) -> CategoryRow | None:
        """The category with this number (its key), as shown in the panel; numbers stay put when
        another category is deleted, so a key keeps meaning what it meant."""
        return next((c for c in self.categories if c.position == number), None)

    def device_description(self) -> str:
        if self.model_info is None:
            return "Loading the model…"
        from protoshelf.core.backbones import BackboneError, describe_device, resolve_device

        try:
            return describe_device(resolve_device(self.device))
        except BackboneError as exc:
            return str(exc)

    def _on_model_loaded(self, info: jobs.ModelInfo) -> None:
        self.model_info = info
        self.model_loaded.emit(info)

    @property
    def busy(self) -> bool:
        return self.jobs.busy or self.live.busy or self._fit_timer.isActive()

    # --- edits (undoable) -------------------------------------------------------------

    def label(self, item_ids, category_id: int | None, text: str | None = None) -> None:
        if category_id is not None:
            self.recent_categories = [category_id, *(c for c in self.recent_categories if c != category_id)][:20]
        ids = [int(i) for i in item_ids if self.labels.get(int(i)) != category_id]
        if not ids:
            return
        if text is None:
            what = "Unlabel" if category_id is None else f"Label as {self.category(category_id).name}:"
            text = f"{what} {len(ids)} item{'s' if len(ids) != 1 else ''}"
        self.undo_stack.push(LabelItems(self, ids, category_id, text))

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
        self.undo_stack.push(DeleteCategory(self, category_id))

    def reorder_categories(self, category_ids: list[int]) -> None:
        """The panel's drag: these categories in this order, on the numbers they hold between them."""
        if list(category_ids) != [c.id for c in self.categories if c.id in set(category_ids)]:
            self.undo_stack.push(ReorderCategories(self, list(category_ids)))

    def _checked_name(self, name: str, category_id: int | None = None) -> str:
        """Refuse a bad or taken name here, before a command is pushed (raises StoreError)."""
        name = validate_category_name(name)
        for other in self.categories:
            if other.name.casefold() == name.casefold() and other.id != category_id:
                raise StoreError(f"A category named {other.name!r} already exists.")
        return name

    # --- used by the commands ---------------------------------------------------------

    def apply_labels(self, changes: dict[int, int | None]) -> None:
        for item_id, category_id in changes.items():
            if category_id is None:
                self.labels.pop(item_id, None)
            else:
                self.labels[item_id] = category_id
        self.model.apply_labels(changes)
        self.labels_changed.emit()
        self.schedule_fit()

    def edit(self, change, categories: bool = False, embeds: bool = False, then=None) -> Task:
        """Write a change on the live lane, after every earlier edit and before the next fit.

        `categories`: re-read the category list afterwards; `embeds`: embed what the edit made stale;
        `then`: called on the GUI thread once the change is written.
        """
        self.live.cancel(kind=TaskKind.SAVE)  # a save of a million predictions must not hold a label back
        return self.live.run(
            "Saving changes", jobs.edit, change, kind=TaskKind.EDIT, failure_title="A change could not be saved",
            on_failure=lambda _error: self.reload(), on_success=lambda _: self._edited(categories, embeds, then),
        )

    def _edited(self, categories: bool, embeds: bool, then) -> None:
        if categories:
            self.categories = self.store.categories()
            self.categories_changed.emit()
            self.schedule_fit()
        if then is not None:
            then()
        if embeds:
            self.embed()

    def reload(self) -> None:
        """Re-read categories, labels and items from the catalog, e.g. after a failed edit."""
        self.categories = self.store.categories()
        self.labels = self.store.labels()
        self.model.set_items(self.store.item_ids(), self.labels)
        self.categories_changed.emit()
        self.labels_changed.emit()
        self.items_changed.emit()
        self.schedule_fit()

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
        from protoshelf.core.methods import is_meta_learner

        meta_states = self._meta_states_for_fit() if is_meta_learner(self.method) else ()
        request = jobs.FitRequest(
            self.backbone, self.method, self.threshold, self.modality, self._embeddings_version, meta_states
        )
        self.live.run("Updating predictions", jobs.fit, request, kind=TaskKind.FIT,
                      on_success=partial(self._on_fitted, request), failure_title="Predictions could not be updated")

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

    def adapt_backbone(self, method: str) -> Task | None:
        """Train the current backbone on the labels with a backbone adapter (jobs lane), then classify
        with the result; the pretrained embeddings stay, so choosing that backbone again switches back."""
        if not self.labels:
            self.notice.emit(f"Label a few examples before running {method}.")
            return None
        return self.jobs.run(
            f"Training the backbone ({method})", jobs.adapt_backbone, method, self.backbone, self.device,
            kind=TaskKind.BACKBONE, on_success=partial(self._on_backbone_adapted, method), failure_title=f"{method} failed",
            on_cancel=partial(self.notice.emit, f"{method} cancelled; the classifier keeps its backbone."),
        )

    def _on_backbone_adapted(self, method: str, backbone: str) -> None:
        if backbone == self.backbone:
            self.notice.emit(f"{method} did not beat the pretrained weights on held-out examples; keeping {backbone}.")
            return
        self.backbone = backbone
        self.backbone_changed.emit(self.backbone)
        self.notice.emit(f"{method}: now classifying with {self.backbone}.")
        self.schedule_fit(now=True)

    def _meta_states_for_fit(self) -> tuple:
        """The meta-learner's state for the current category set, training it in the background
        when missing; until then the last one learned for this catalog (or none: untrained)."""
        from protoshelf.core.meta_training import category_set_key

        key = category_set_key(self.backbone, self.method, self.labels)
        if key in self._meta_states or not self.labels:
            return self._meta_states.get(key, ())
        running = (t for t in self.jobs.pending if t.kind == TaskKind.META_TRAIN and not t.cancel_requested)
        if not any(category_set_key(*t.args) == key for t in running):
            self.jobs.cancel(TaskKind.META_TRAIN)
            backbone, method, labels = self.backbone, self.method, dict(self.labels)
            self.jobs.run(
                "Learning from your categories", jobs.meta_train, backbone, method, labels, kind=TaskKind.META_TRAIN,
                on_success=partial(self._on_meta_trained, key, backbone, method), failure_title="Meta-training failed",
                on_cancel=partial(self._on_meta_training_cancelled, key, backbone, method),
            )
        return self._meta_states.get(("latest", self.backbone, self.method), ())

    def _on_meta_training_cancelled(self, key: tuple, backbone: str, method: str) -> None:
        from protoshelf.core.meta_training import category_set_key

        if key == category_set_key(self.backbone, self.method, self.labels):
            self._meta_states[key] = self._meta_states.get(("latest", backbone, method), ())
            self.notice.emit(f"{method}: learning from your categories cancelled; it starts again when they change.")

    def _on_meta_trained(self, key: tuple, backbone: str, method: str, states: tuple) -> None:
        self._meta_states[key] = states
        self._meta_states[("latest", backbone, method)] = states
        if (backbone, method) == (self.backbone, self.method):
            self.schedule_fit(now=True)

    @Slot()
    def save_predictions(self, kind: TaskKind = TaskKind.SAVE) -> Task | None:
        """Persist the shown predictions for the CLI and export (in one transaction, on the live lane)."""
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

    # --- background jobs --------------------------------------------------------------

    def embed(self) -> Task:
        return self.jobs.run(
            "Embedding", jobs.embed_missing, self.backbone, self.device, self.embed_titles, kind=TaskKind.EMBED,
            on_success=self._on_embedded, failure_title="Embedding failed", on_cancel=self._on_embed_cancelled,
            after=self._after_embedding, on_progress=self._on_embed_progress,
        )

    @Slot(int, int)
    def _on_embed_progress(self, done: int, total: int) -> None:
        """On a long run, refresh the predictions now and then with what is embedded so far."""
        if time.monotonic() - self._last_reload > RELOAD_DURING_EMBEDDING_S:
            self._embeddings_changed()

    def _embeddings_changed(self) -> None:
        self._last_reload = time.monotonic()
        self._embeddings_version += 1
        self.schedule_fit(now=True)

    def _on_embedded(self, summary: jobs.EmbedSummary) -> None:
        if summary.images and summary.images.failed:
            self.problem.emit(
                "Some images could not be embedded",
                "\n".join(f"{path}: {reason}" for path, reason in summary.images.failed),
            )
        if summary.titles_unavailable:
            self.notice.emit(f"Titles are not used: {summary.titles_unavailable}")

    def _on_embed_cancelled(self) -> None:
        waiting = len(self.store.items_without_embedding(self.backbone))
        self.notice.emit(f"Embedding cancelled; {waiting} items wait to be embedded.")

    def _after_embedding(self, task: Task) -> None:
        summary: jobs.EmbedSummary | None = task.result
        embedded = summary is not None and ((summary.images and summary.images.embedded) or summary.titles)
        if embedded or task.outcome != "succeeded":  # a stopped run may have saved some batches
            self._embeddings_changed()

    def import_paths(self, paths: list[str], category_id: int | None = None) -> Task:
        """Import files and folders; with a category, the imported items become its examples."""
        return self.jobs.run(
            "Importing", jobs.import_files, list(paths), category_id, kind=TaskKind.IMPORT,
            on_success=self._on_imported, failure_title="Import failed", on_cancel=self._on_import_cancelled,
            after=lambda _task: self._refresh_items(),
        )

    def _refresh_items(self) -> None:
        self.model.set_items(self.store.item_ids(), self.labels)
        self.items_changed.emit()

    def _on_import_cancelled(self) -> None:
        self._refresh_items()
        self.notice.emit("Import cancelled; the files imported so far are kept.")
        self.embed()

    def _on_imported(self, result: jobs.ImportResult) -> None:
        self._refresh_items()
        report = result.report
        if result.category_id is not None and any(c.id == result.category_id for c in self.categories):
            self.label(report.item_ids, result.category_id)
        self._load_search_texts(np.asarray(report.added, np.int64))
        self.notice.emit(f"Import: {report.summary()}.")
        self.import_finished.emit(result)
        self.embed()

    def import_titles(self, csv_path: str) -> Task:
        return self.jobs.run(
            "Importing titles", jobs.import_titles, csv_path, kind=TaskKind.IMPORT,
            on_success=self._on_titles_imported, failure_title="Titles could not be imported",
            on_cancel=self._titles_changed,
        )

    def _on_titles_imported(self, result: tuple[int, list[str]]) -> None:
        updated, problems = result
        self.notice.emit(f"Titles set on {updated} items.")
        if problems:
            self.problem.emit("Some rows of the titles file were skipped", "\n".join(problems))
        self._titles_changed()

    def _titles_changed(self) -> None:
        self.model.forget_rows()
        self.reload()
        self._load_search_texts(self.model.all_ids())
        self.embed()

    def refresh_search_texts(self) -> None:
        self._load_search_texts(self.model.all_ids())

    def set_title(self, item_id: int, title: str) -> None:
        """Undoable like every other edit."""
        info = self.model.item_info(item_id)
        title = title.strip()
        if info is not None and title != (info.title or ""):
            self.undo_stack.push(SetTitle(self, item_id, info.title or "", title))

    def apply_title(self, item_id: int, title: str) -> None:
        """Used by SetTitle: show the title now, write it (and re-embed it) on the edit lane."""
        self.edit(lambda store: store.set_title(item_id, title), embeds=self.embed_titles)
        self.model.title_changed(item_id, title)

    def _load_search_texts(self, item_ids: np.ndarray) -> None:
        if len(item_ids):
            self.jobs.run(
                "Loading titles", jobs.load_search_texts, item_ids, kind=TaskKind.TITLES,
                on_success=self.model.add_search_texts,
            )

    def export(self, request: ExportRequest) -> Task:
        """CSV of the shown predictions (saved first if needed), like `protoshelf export`."""
        self._save_timer.stop()
        self.save_predictions(kind=TaskKind.SAVE_FOR_EXPORT)
        return self.live.run(
            "Exporting", jobs.export, request, kind=TaskKind.EXPORT,
            on_success=partial(self._exported, str(request.path)), failure_title="Export failed",
        )

    def _exported(self, out_path: str, rows: int) -> None:
        self.notice.emit(f"Wrote {rows} rows to {out_path}.")
        self.export_finished.emit(out_path, rows)

    def try_image(self, image: Path | bytes) -> Task:
        """Predictions for an image that stays out of the catalog; answered by `image_tried(scores)`."""
        request = jobs.FitRequest(self.backbone, self.method, self.threshold, self.modality, self._embeddings_version)
        return self.live.run(
            "Trying an image", jobs.try_image, request, self.device, image, kind=TaskKind.TRY,
            on_success=self.image_tried.emit, failure_title="The image could not be classified",
        )

    def find_similar(self, item_id: int, k: int = 48) -> Task:
        """The k nearest items to one item; answered by `similar_found(item_id, neighbours)`."""
        return self.live.run(
            "Finding similar items", jobs.similar_items, self.backbone, self._embeddings_version, int(item_id), k,
            kind=TaskKind.SIMILAR, on_success=partial(self.similar_found.emit, int(item_id)),
            on_failure=lambda error: self.notice.emit(f"No similar items: {error}"),
        )

    def suggest(self, n: int = 20) -> Task | None:
        """Items worth labelling next, from the shown predictions; answered by `suggestions_ready`."""
        if self.predictions is None:
            self.notice.emit("Nothing to suggest yet: label a few examples first.")
            return None
        return self.live.run(
            "Suggesting items to label", jobs.suggestions, self.backbone, self._embeddings_version, self.predictions,
            list(self.labels), n, kind=TaskKind.SUGGEST, on_success=self.suggestions_ready.emit,
            failure_title="Suggestions failed",
        )

    def find_duplicates(self, threshold: float) -> Task:
        """Minutes on a big catalog (pairs within k-means cells): the jobs lane, with progress and Cancel."""
        return self.jobs.run(
            "Finding near-duplicates", jobs.find_duplicates, self.backbone, threshold, kind=TaskKind.DUPLICATES,
            on_success=self.duplicates_found.emit, failure_title="Finding near-duplicates failed",
            on_cancel=partial(self.notice.emit, "Finding near-duplicates cancelled."),
        )

    def export_duplicates(self, groups, out_path: str | Path) -> Task:
        return self.jobs.run(
            "Exporting near-duplicates", jobs.write_duplicates, Path(out_path), list(groups), kind=TaskKind.EXPORT,
            on_success=partial(self._exported, str(out_path)), failure_title="Export failed",
        )

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
