"""Writing what the app shows to files: the predictions CSV (File ▸ Export) and near-duplicate groups.

Both run on a lane; `export_finished(path, rows)` and a notice answer them.
"""
from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from protoshelf.gui import jobs
from protoshelf.gui.workers import Task, TaskKind

if TYPE_CHECKING:
    from protoshelf.gui.export_dialog import ExportRequest
    from protoshelf.gui.session import CatalogSession


def export(session: CatalogSession, request: ExportRequest) -> Task:
    """CSV of the shown predictions (saved first if needed), like `protoshelf export`."""
    session.save_predictions(kind=TaskKind.SAVE_FOR_EXPORT)
    return session.live.run(
        "Exporting", jobs.export, request, kind=TaskKind.EXPORT,
        on_success=partial(_exported_predictions, session, str(request.path)), failure_title="Export failed",
    )


def _exported_predictions(session: CatalogSession, out_path: str, result: tuple[int, list[str]]) -> None:
    """The export's notes (formula-like cells in a shop file) are advice on what to do with the file:
    a dialog, since a status-bar message of that length is cut off and gone in seconds."""
    rows, notes = result
    if notes:
        session.problem.emit(f"Wrote {rows} rows to {out_path}: upload it as it is", "\n".join(notes))
    _exported(session, out_path, rows)


def export_duplicates(session: CatalogSession, groups, out_path: str | Path) -> Task:
    return session.jobs.run(
        "Exporting near-duplicates", jobs.write_duplicates, Path(out_path), list(groups), kind=TaskKind.EXPORT,
        on_success=partial(_exported, session, str(out_path)), failure_title="Export failed",
    )


def _exported(session: CatalogSession, out_path: str, rows: int) -> None:
    session.notice.emit(f"Wrote {rows} rows to {out_path}.")
    session.export_finished.emit(out_path, rows)
