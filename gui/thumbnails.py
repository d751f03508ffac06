"""Thumbnails for the grid, loaded off the GUI thread only for rows that are painted.

The delegate asks for a thumbnail while painting. A miss returns None (the delegate draws a
placeholder) and queues a load; a few loads run at a time in a small thread pool, each reading the
stored JPEG and decoding it into a QImage (QPixmap may only be made on the GUI thread). Waiting
requests are served newest first and the oldest are dropped, so rows the user scrolled past are
never loaded; a row that comes back into view asks again when it is painted. Decoded images live
in an LRU cache bounded by bytes.
"""
from __future__ import annotations

import logging
from collections import OrderedDict
from functools import partial

from cachetools import LRUCache
from PySide6.QtCore import QObject, Qt, QThreadPool, Signal, Slot
from PySide6.QtGui import QImage

from protoshelf.core.store import Store

log = logging.getLogger(__name__)

CACHE_BYTES = 96 * 2**20
MAX_IN_FLIGHT = 8
MAX_WAITING = 256


class _Relay(QObject):
    """Lives on the GUI thread; loaders emit through it, so results arrive there queued."""

    loaded = Signal(int, QImage)


def _load(store: Store, item_id: int, relay: _Relay, side: int) -> None:
    """Read, decode and scale to the cell's size here, so painting is a plain copy."""
    try:
        data = store.thumbnail(item_id)
        image = QImage.fromData(data) if data else QImage()
        if not image.isNull():
            image = image.scaled(
                side, side, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation
            ).convertToFormat(QImage.Format.Format_ARGB32_Premultiplied)
    except Exception:  # noqa: BLE001 - a failed thumbnail shows the placeholder, nothing more
        log.exception("thumbnail of item %s", item_id)
        image = QImage()
    relay.loaded.emit(item_id, image)


class ThumbnailCache(QObject):
    loaded = Signal(int)

    def __init__(
        self, store: Store, side: int = 128, cache_bytes: int = CACHE_BYTES, max_in_flight: int = MAX_IN_FLIGHT,
        max_waiting: int = MAX_WAITING, parent: QObject | None = None,
    ):
        super().__init__(parent)
        self.store = store
        self.side = side
        self.max_in_flight = max_in_flight
        self.max_waiting = max_waiting
        self.loads_started = 0
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(2)
        self._images: LRUCache = LRUCache(cache_bytes, getsizeof=lambda image: max(1, image.sizeInBytes()))
        self._in_flight: set[int] = set()
        self._waiting: OrderedDict[int, None] = OrderedDict()
        self._relay = _Relay(self)
        self._relay.loaded.connect(self._on_loaded)

    def get(self, item_id: int) -> QImage | None:
        """The decoded thumbnail (a null QImage when the item has none), or None while it loads."""
        image = self._images.get(item_id)
        if image is None:
            self._request(item_id)
        return image

    def forget(self, item_ids) -> None:
        for item_id in item_ids:
            self._images.pop(item_id, None)

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    def shutdown(self) -> None:
        self._waiting.clear()
        self.pool.clear()
        self.pool.waitForDone()

    def _request(self, item_id: int) -> None:
        if item_id in self._in_flight:
            return
        self._waiting[item_id] = None
        self._waiting.move_to_end(item_id)
        while len(self._waiting) > self.max_waiting:
            self._waiting.popitem(last=False)
        self._start_loads()

    def _start_loads(self) -> None:
        while self._waiting and len(self._in_flight) < self.max_in_flight:
            item_id, _ = self._waiting.popitem(last=True)
            self._in_flight.add(item_id)
            self.loads_started += 1
            self.pool.start(partial(_load, self.store, item_id, self._relay, self.side))

    @Slot(int, QImage)
    def _on_loaded(self, item_id: int, image: QImage) -> None:
        self._in_flight.discard(item_id)
        self._images[item_id] = image
        self.loaded.emit(item_id)
        self._start_loads()
