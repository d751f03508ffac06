"""File ▸ Import product feed…: the feed import on the session's job lane, and what it reports.

The work is core/feed_import.py's; this module only runs it off the GUI thread, then has the
session re-read the catalog (a feed adds items, categories and labels at once) and tells the user
the counts and the rows that failed. When the feed names known pictures by new product ids, it asks
whether those are the same products renamed or new ones, and imports again with the answer.
"""
from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QMessageBox, QWidget

from protoshelf.core.feed_import import FeedReport, import_feed
from protoshelf.core.store import ProductIdsChanged
from protoshelf.gui.session import CatalogSession
from protoshelf.gui.workers import Task, TaskKind, TaskProgress, WorkerContext, failure_text

FEED_FILTER = "Product feeds (*.csv *.tsv *.txt *.xml)"
MAX_LISTED = 200
"""Failed rows listed in the dialog; the counts cover them all."""


def import_feed_job(
    context: WorkerContext, progress: TaskProgress, feed_path: Path, labels: bool, ids_changed: bool | None = None
) -> FeedReport:
    progress.stage("Importing product feed")
    return import_feed(context.store, feed_path, labels=labels, progress=progress, ids_changed=ids_changed)


def ask_whether_ids_changed(parent: QWidget | None, error: ProductIdsChanged) -> bool | None:
    """True: the same products under new ids; False: new products; None: do not import."""
    box = QMessageBox(QMessageBox.Icon.Question, "New product ids",
                      f"This feed names products by new ids: {error.new_id!r} has the picture of the catalog's "
                      f"{error.old_id!r}, which the feed no longer lists. Did the shop's ids change?", parent=parent)
    same = box.addButton("Same products, new ids", QMessageBox.ButtonRole.AcceptRole)
    new = box.addButton("New products", QMessageBox.ButtonRole.AcceptRole)
    box.addButton(QMessageBox.StandardButton.Cancel)
    box.setInformativeText("Same products keep their labels and take the new ids; new products are added "
                           "next to them. The feed's products with such ids wait for your answer.")
    box.exec()
    return {same: True, new: False}.get(box.clickedButton())


def describe_problems(report: FeedReport) -> str:
    lines = [f"{where}: {reason}" for where, reason in report.failed] + report.notes
    more = len(lines) - MAX_LISTED
    return "\n".join(lines[:MAX_LISTED] + ([f"… and {more} more"] if more > 0 else []))


class FeedImporter(QObject):
    """Starts feed imports for a session; `finished` carries the FeedReport of one that succeeded,
    once the window shows what it brought."""

    finished = Signal(object)

    def __init__(self, session: CatalogSession, parent: QObject | None = None):
        super().__init__(parent)
        self.session = session

    def start(self, feed_path: str | Path, labels: bool = True, ids_changed: bool | None = None) -> Task:
        return self.session.jobs.run(
            "Importing product feed", import_feed_job, Path(feed_path), labels, ids_changed, kind=TaskKind.IMPORT,
            on_success=self._imported, on_cancel=self._cancelled, on_failure=partial(self._failed, feed_path, labels),
        )

    def _failed(self, feed_path: str | Path, labels: bool, error: BaseException) -> None:
        self._reload()
        if isinstance(error, ProductIdsChanged):
            answer = ask_whether_ids_changed(self.parent() if isinstance(self.parent(), QWidget) else None, error)
            if answer is not None:
                self.start(feed_path, labels, answer)
            return
        self.session.problem.emit("The product feed could not be imported", failure_text(error))

    def _reload(self, then: Callable[[], None] | None = None) -> None:
        self.session.model.forget_rows()
        self.session.reload(then)

    def _imported(self, report: FeedReport) -> None:
        renamed = report.renamed_note()
        self.session.notice.emit(f"Feed import: {report.summary()}." + (f" {renamed}." if renamed else ""))
        if report.failed or report.notes:
            self.session.problem.emit("Some rows of the feed need a look", describe_problems(report))
        self._reload(then=partial(self._shown, report))

    def _shown(self, report: FeedReport) -> None:
        """The window shows the feed's products and labels: tell, then title and embed them."""
        self.finished.emit(report)
        self._carry_on()

    def _cancelled(self) -> None:
        self._reload(then=self._carry_on)
        self.session.notice.emit("Feed import cancelled; the products imported so far are kept.")

    def _carry_on(self) -> None:
        self.session.refresh_search_texts()
        self.session.embed()
