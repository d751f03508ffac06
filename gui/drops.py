"""What a drop carries: catalog items dragged from the grid, or files from the file manager."""
from __future__ import annotations

import json
from pathlib import Path

from PySide6.QtCore import QMimeData

MIME_TYPE = "application/x-protoshelf-item-ids"


def item_ids_mime(catalog: Path, ids: list[int]) -> QMimeData:
    """Items dragged from a catalog's grid, with the catalog they belong to: with two windows open,
    item 3 of one catalog dropped on the other's category would label the other's item 3."""
    mime = QMimeData()
    mime.setData(MIME_TYPE, json.dumps({"catalog": str(catalog), "ids": ids}).encode())
    return mime


def dropped_item_ids(mime: QMimeData, catalog: Path) -> list[int]:
    """The dragged items if they come from `catalog`'s grid; none from another catalog's."""
    payload = _payload(mime, MIME_TYPE, catalog)
    return [int(i) for i in payload["ids"]] if payload else []


def _payload(mime: QMimeData, mime_type: str, catalog: Path) -> dict | None:
    """A drag's data if it has this type and comes from `catalog`; None for anything else, such as
    the bare ids an older ProtoShelf drags."""
    if not mime.hasFormat(mime_type):
        return None
    try:
        payload = json.loads(bytes(mime.data(mime_type)).decode())
    except (UnicodeDecodeError, ValueError):
        return None
    return payload if isinstance(payload, dict) and payload.get("catalog") == str(catalog) else None


CATEGORY_MIME_TYPE = "application/x-protoshelf-category"


def category_mime(catalog: Path, category_id: int) -> QMimeData:
    """A category row dragged in the panel, with its catalog, as items are."""
    mime = QMimeData()
    mime.setData(CATEGORY_MIME_TYPE, json.dumps({"catalog": str(catalog), "id": category_id}).encode())
    return mime


def dropped_category(mime: QMimeData, catalog: Path) -> int | None:
    """A category row dragged within `catalog`'s panel, to reorder the categories."""
    payload = _payload(mime, CATEGORY_MIME_TYPE, catalog)
    return int(payload["id"]) if payload else None


def dropped_paths(mime: QMimeData) -> list[str]:
    """Local files and folders; links to web pages are not something we can import."""
    return [url.toLocalFile() for url in mime.urls() if url.isLocalFile()] if mime.hasUrls() else []
