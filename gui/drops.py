"""What a drop carries: catalog items dragged from the grid, or files from the file manager."""
from __future__ import annotations

import json

from PySide6.QtCore import QMimeData

from gui.catalog_model import MIME_TYPE


def dropped_item_ids(mime: QMimeData) -> list[int]:
    if not mime.hasFormat(MIME_TYPE):
        return []
    return [int(i) for i in json.loads(bytes(mime.data(MIME_TYPE)).decode())]


def dropped_paths(mime: QMimeData) -> list[str]:
    """Local files and folders; links to web pages are not something we can import."""
    return [url.toLocalFile() for url in mime.urls() if url.isLocalFile()] if mime.hasUrls() else []
