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
    if not mime.hasFormat(MIME_TYPE):
        return []
    payload = json.loads(bytes(mime.data(MIME_TYPE)).decode())
    return [int(i) for i in payload["ids"]] if payload.get("catalog") == str(catalog) else []


CATEGORY_MIME_TYPE = "application/x-protoshelf-category"


def category_mime(category_id: int) -> QMimeData:
    mime = QMimeData()
    mime.setData(CATEGORY_MIME_TYPE, str(category_id).encode())
    return mime


def dropped_category(mime: QMimeData) -> int | None:
    """A category row dragged within the panel, to reorder the categories."""
    return int(bytes(mime.data(CATEGORY_MIME_TYPE)).decode()) if mime.hasFormat(CATEGORY_MIME_TYPE) else None


def dropped_paths(mime: QMimeData) -> list[str]:
    """Local files and folders; links to web pages are not something we can import."""
    return [url.toLocalFile() for url in mime.urls() if url.isLocalFile()] if mime.hasUrls() else []
