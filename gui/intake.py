"""What comes into an open catalog: files and folders, a titles file, and the embedding that follows.

Each runs on the session's `jobs` lane with progress and Cancel; when it ends, the session's mirror
is re-read and the catalog embedded, so new items get predictions. A long embedding refreshes the
predictions now and then with what is embedded so far.
"""
from __future__ import annotations

import time
from functools import partial
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import QObject, Slot

from protoshelf.gui import jobs
from protoshelf.gui.workers import Task, TaskKind

if TYPE_CHECKING:
    from protoshelf.gui.session import CatalogSession

RELOAD_DURING_EMBEDDING_S = 15.0


class Intake(QObject):
    def __init__(self, session: CatalogSession):
        super().__init__(session)
        self.session = session
        self._last_reload = time.monotonic()

    def embed(self) -> Task:
        session = self.session
        return session.jobs.run(
            "Embedding", jobs.embed_missing, session.backbone, session.device, session.embed_titles,
            kind=TaskKind.EMBED, on_success=self._on_embedded,
            on_failure=partial(session.report_model_task_failure, "Embedding failed"),
            on_cancel=self._on_embed_cancelled, after=self._after_embedding, on_progress=self._on_embed_progress,
        )

    @Slot(int, int)
    def _on_embed_progress(self, done: int, total: int) -> None:
        """On a long run, refresh the predictions now and then with what is embedded so far."""
        if time.monotonic() - self._last_reload > RELOAD_DURING_EMBEDDING_S:
            self._embeddings_changed()

    def _embeddings_changed(self) -> None:
        self._last_reload = time.monotonic()
        self.session.embeddings_changed()

    def _on_embedded(self, summary: jobs.EmbedSummary) -> None:
        if summary.images and summary.images.failed:
            self.session.problem.emit(
                "Some images could not be embedded",
                "\n".join(f"{path}: {reason}" for path, reason in summary.images.failed),
            )
        if summary.titles_unavailable:
            self.session.notice.emit(f"Titles are not used: {summary.titles_unavailable}")

    def _on_embed_cancelled(self) -> None:
        session = self.session
        session.live.run(
            "Counting what waits", jobs.waiting_to_embed, session.backbone,
            on_success=lambda count: session.notice.emit(f"Embedding cancelled; {count} items wait to be embedded."),
        )

    def _after_embedding(self, task: Task) -> None:
        summary: jobs.EmbedSummary | None = task.result
        embedded = summary is not None and ((summary.images and summary.images.embedded) or summary.titles)
        if embedded or task.outcome != "succeeded":  # a stopped run may have saved some batches
            self._embeddings_changed()

    def import_paths(self, paths: list[str], category_id: int | None = None) -> Task:
        """Import files and folders; with a category, the imported items become its examples."""
        return self.session.jobs.run(
            "Importing", jobs.import_files, list(paths), category_id, kind=TaskKind.IMPORT,
            on_success=partial(self._on_imported, self.session.edits), failure_title="Import failed",
            on_cancel=self._on_import_cancelled, after=lambda _task: self.session.refresh_items(),
        )

    def _on_import_cancelled(self) -> None:
        self.session.notice.emit("Import cancelled; the files imported so far are kept.")
        self.embed()

    def _on_imported(self, edits_at_start: int, result: jobs.ImportResult) -> None:
        """`edits_at_start`: the session's edit count when the import began. A label the user gave
        meanwhile to one of the dropped files may have been written after the job's: the window
        then shows what the catalog holds for them."""
        session = self.session
        report = result.report
        target = next((c for c in session.categories if c.id == result.category_id), None)  # deleted meanwhile?
        labelled = target is not None and result.before is not None
        if labelled:
            edited_meanwhile = session.edits != edits_at_start
            session.show_labelled(report.item_ids, target.id, result.before, edits_at_start)
            if edited_meanwhile:
                session.show_stored_labels(report.item_ids)
        self.load_search_texts(np.asarray(report.added, np.int64))
        kept = f"as examples of {target.name}" if labelled else "unlabelled (the category was deleted)"
        if result.cancelled:  # only an import onto a category keeps what came in when cancelled
            session.notice.emit(f"Import cancelled; the {len(report.item_ids):,} files imported so far are kept, "
                                f"{kept}.")
        else:
            lost = result.category_id is not None and not labelled
            session.notice.emit(f"Import: {report.summary()}" + ("; they are unlabelled (the category was deleted)."
                                                                 if lost else "."))
        session.import_finished.emit(result)
        self.embed()

    def import_titles(self, csv_path: str) -> Task:
        return self.session.jobs.run(
            "Importing titles", jobs.import_titles, csv_path, kind=TaskKind.IMPORT,
            on_success=self._on_titles_imported, failure_title="Titles could not be imported",
            on_cancel=self._titles_changed,
        )

    def _on_titles_imported(self, result: tuple[int, list[str]]) -> None:
        updated, problems = result
        self.session.notice.emit(f"Titles set on {updated} items.")
        if problems:
            self.session.problem.emit("Some rows of the titles file were skipped", "\n".join(problems))
        self._titles_changed()

    def _titles_changed(self) -> None:
        self.session.model.forget_rows()
        self.session.reload(then=lambda: self.load_search_texts(self.session.model.all_ids()))
        self.embed()

    def load_search_texts(self, item_ids: np.ndarray) -> None:
        """Titles (or file names) for the search box, read on the jobs lane."""
        if len(item_ids):
            self.session.jobs.run(
                "Loading titles", jobs.load_search_texts, item_ids, kind=TaskKind.TITLES,
                on_success=self.session.model.add_search_texts,
            )
