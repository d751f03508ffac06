"""Questions asked of the catalog that change nothing in it: similar items, items worth labelling
next, near-duplicate listings, and how an outside image would be classified.

Each runs on a lane and is answered by one of the session's signals (`similar_found`,
`suggestions_ready`, `duplicates_found`, `image_tried`); the window decides how to show it.
"""
from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from protoshelf.gui import jobs
from protoshelf.gui.workers import Task, TaskKind

if TYPE_CHECKING:
    from protoshelf.gui.session import CatalogSession


def find_similar(session: CatalogSession, item_id: int, k: int = 48) -> Task:
    """The k nearest items to one item; answered by `similar_found(item_id, neighbours)`."""
    return session.live.run(
        "Finding similar items", jobs.similar_items, session.backbone, session.embeddings_version, int(item_id), k,
        kind=TaskKind.SIMILAR, on_success=partial(session.similar_found.emit, int(item_id)),
        on_failure=lambda error: session.notice.emit(f"No similar items: {error}"),
    )


def suggest(session: CatalogSession, n: int = 20) -> Task | None:
    """Items worth labelling next, from the shown predictions; answered by `suggestions_ready`."""
    if session.predictions is None:
        session.notice.emit("Nothing to suggest yet: label a few examples first.")
        return None
    return session.live.run(
        "Suggesting items to label", jobs.suggestions, session.backbone, session.embeddings_version,
        session.predictions, list(session.labels), n, kind=TaskKind.SUGGEST,
        on_success=session.suggestions_ready.emit, failure_title="Suggestions failed",
    )


def find_duplicates(session: CatalogSession, threshold: float) -> Task:
    """Minutes on a big catalog (pairs within k-means cells): the jobs lane, with progress and Cancel."""
    return session.jobs.run(
        "Finding near-duplicates", jobs.find_duplicates, session.backbone, threshold, kind=TaskKind.DUPLICATES,
        on_success=session.duplicates_found.emit, failure_title="Finding near-duplicates failed",
        on_cancel=partial(session.notice.emit, "Finding near-duplicates cancelled."),
    )


def try_image(session: CatalogSession, image: Path | bytes) -> Task:
    """Predictions for an image that stays out of the catalog; answered by `image_tried(scores)`."""
    return session.live.run(
        "Trying an image", jobs.try_image, session.fit_request(), image,
        kind=TaskKind.TRY, on_success=session.image_tried.emit, failure_title="The image could not be classified",
    )
