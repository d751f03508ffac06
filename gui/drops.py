"""What a drop carries: catalog items dragged from the grid, or files from the file manager."""
from __future__ import annotations

import json

from PySide6.QtCore import QMimeData

from protoshelf.gui.catalog_model import MIME_TYPE


def dropped_item_ids(mime: QMimeData) -> list[int]:
    if not mime.hasFormat(MIME_TYPE):
        return []
    return [int(i) for i in json.loads(bytes(mime.data(MIME_TYPE)).decode())]


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
