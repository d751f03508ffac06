"""File ▸ Import product feed…: the feed import on the session's job lane, and what it reports.

The work is core/feed_import.py's; this module only runs it off the GUI thread, then has the
session re-read the catalog (a feed adds items, categories and labels at once) and tells the user
the counts and the rows that failed.
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal

from protoshelf.core.feed_import import FeedReport, import_feed
from protoshelf.gui.session import CatalogSession
from protoshelf.gui.workers import Task, TaskKind, TaskProgress, WorkerContext

FEED_FILTER = "Product feeds (*.csv *.tsv *.txt *.xml)"
MAX_LISTED = 200
"""Failed rows listed in the dialog; the counts cover them all."""


def import_feed_job(context: WorkerContext, progress: TaskProgress, feed_path: Path, labels: bool) -> FeedReport:
    progress.stage("Importing product feed")
    return import_feed(context.store, feed_path, labels=labels, progress=progress)


def describe_problems(report: FeedReport) -> str:
    lines = [f"{where}: {reason}" for where, reason in report.failed] + report.notes
    more = len(lines) - MAX_LISTED
    return "\n".join(lines[:MAX_LISTED] + ([f"… and {more} more"] if more > 0 else []))


class FeedImporter(QObject):
    """Starts feed imports for a session; `finished` carries the FeedReport of one that succeeded."""

    finished = Signal(object)

    def __init__(self, session: CatalogSession, parent: QObject | None = None):
        super().__init__(parent)
        self.session = session

    def start(self, feed_path: str | Path, labels: bool = True) -> Task:
        return self.session.jobs.run(
            "Importing product feed", import_feed_job, Path(feed_path), labels, kind=TaskKind.IMPORT,
            on_success=self._imported, on_cancel=self._cancelled, on_failure=lambda _error: self._reload(),
            failure_title="The product feed could not be imported",
        )

    def _reload(self) -> None:
        self.session.model.forget_rows()
        self.session.reload()

    def _imported(self, report: FeedReport) -> None:
        self._reload()
        self.session.notice.emit(f"Feed import: {report.summary()}.")
        if report.failed or report.notes:
            self.session.problem.emit("Some rows of the feed need a look", describe_problems(report))
        self.finished.emit(report)
        self._carry_on()

    def _cancelled(self) -> None:
        self._reload()
        self.session.notice.emit("Feed import cancelled; the products imported so far are kept.")
        self._carry_on()

    def _carry_on(self) -> None:
        self.session.refresh_search_texts()
        self.session.embed()
