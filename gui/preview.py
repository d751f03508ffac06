"""A larger look at one item: the image, its editable title, its path and every category's score."""
from __future__ import annotations

import html
import logging
from functools import partial
from pathlib import Path

from PySide6.QtCore import QCoreApplication, QObject, Qt, QThreadPool, Signal, Slot
from PySide6.QtGui import QColor, QImage, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView, QDialog, QDialogButtonBox, QFormLayout, QHeaderView, QLabel, QLineEdit, QTableWidget,
    QTableWidgetItem, QVBoxLayout,
)

from protoshelf.core.images import ImageError, open_image
from protoshelf.core.quality import why
from protoshelf.gui.catalog_model import ConfidenceRole, PredictionRole
from protoshelf.gui.catalog_view import describe_prediction
from protoshelf.gui.categories_panel import swatch
from protoshelf.gui.session import CatalogSession

PREVIEW_SIDE = 420
log = logging.getLogger(__name__)


def load_preview(path: str, thumbnail: bytes | None, side: int = PREVIEW_SIDE) -> QImage:
    """The original decoded at about the size shown, by the catalog's own decoder and its guards
    (core/images.py: a plain file only, size, pixel and JPEG scan limits, the plugins it allows);
    the stored thumbnail when the original cannot be read now: moved, unreadable, or no longer a
    plain file. Qt's reader went around those guards: a named pipe put where a picture was
    waited for a writer for good, and a 4 GB file of zeros after a JPEG marker held the window
    for 15 s."""
    image = decoded_by_pillow(path, side)
    if image.isNull() and thumbnail:
        return QImage.fromData(thumbnail)
    return image


def decoded_by_pillow(path: str, side: int) -> QImage:
    """A picture decoded as the catalog decodes it (a JPEG at the smallest scale that still fills
    a box of `side`), at most `side` pixels a side, never enlarged (a 300 px product shot enlarged
    to 420 px no longer fit the preview's image area); a null image when it cannot be read."""
    try:
        image = open_image(Path(path), box=side)
    except ImageError:
        return QImage()
    image.thumbnail((side, side))
    return QImage(image.tobytes(), image.width, image.height, 3 * image.width, QImage.Format.Format_RGB888).copy()


class _Originals(QObject):
    """Decodes previews' originals on a worker thread of its own (a large picture takes a second,
    a file on a slow disk longer), for as long as the application runs; a dialog shows the stored
    thumbnail until its original arrives. The original of a dialog closed before its turn is not
    decoded: the dialog still open waited behind every one closed before it (4.4 s after 29)."""

    loaded = Signal(object, QImage)
    """(the asking dialog's token, the image)"""

    def __init__(self, parent: QObject):
        super().__init__(parent)
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(1)
        self.wanted: set[object] = set()

    def load(self, token: object, path: str, side: int) -> None:
        self.wanted.add(token)
        self.pool.start(partial(self._load, token, path, side))

    def forget(self, token: object) -> None:
        self.wanted.discard(token)

    def _load(self, token: object, path: str, side: int) -> None:
        """On the worker thread, where nothing may escape: an exception there reached the
        application's error dialog on a thread that cannot show one, and the app crashed."""
        if token not in self.wanted:
            return
        try:
            image = load_preview(path, None, side)
        except Exception:  # noqa: BLE001 - the stored thumbnail stays
            log.exception("original of %s", path)
            image = QImage()
        self.wanted.discard(token)
        self.loaded.emit(token, image)


def _originals() -> _Originals:
    app = QCoreApplication.instance()
    found = app.findChild(_Originals)
    return found if found is not None else _Originals(app)


def drop_waiting_originals() -> None:
    """When the window closes: the originals not begun are no longer wanted (the one being decoded
    finishes; the application waits for it on exit)."""
    found = QCoreApplication.instance().findChild(_Originals)
    if found is not None:
        found.pool.clear()
        found.wanted.clear()


def selectable(text: str) -> QLabel:
    label = QLabel(text, textFormat=Qt.TextFormat.PlainText, wordWrap=True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


def why_text(session: CatalogSession, item_id: int, categories: dict) -> str:
    """"Why this prediction": the labelled examples nearest to the item in its best category, and
    the name's share of that category's evidence."""
    if session.predictions is None:
        return ""
    reason = why(session.predictions, session.labels, item_id)
    if reason is None:
        return ""
    category = categories.get(reason.category_id)
    name = html.escape(category.name) if category else f"#{reason.category_id}"
    if reason.nearest:
        examples = ", ".join(
            f"{html.escape(session.model.item_info(i).display_name if session.model.item_info(i) else str(i))} "
            f"({similarity:.2f})" for i, similarity in reason.nearest
        )
        text = f"Why <b>{name}</b>: nearest examples by {reason.modality}: {examples}."
    else:
        text = f"Why <b>{name}</b>: no example yet; from the category name alone."
    if reason.name_share is not None and reason.nearest:
        text += f" The name counts as {reason.name_share:.0%} of the category's examples."
    return text


class PreviewDialog(QDialog):
    def __init__(self, session: CatalogSession, item_id: int, parent=None):
        super().__init__(parent)
        self.session = session
        self.item_id = item_id
        info = session.model.item_info(item_id)
        self.setWindowTitle(info.display_name if info else f"Item {item_id}")

        self.image = QLabel(alignment=Qt.AlignmentFlag.AlignCenter)
        self.image.setMinimumSize(PREVIEW_SIDE // 2, PREVIEW_SIDE // 2)
        thumbnail = session.store.thumbnail(item_id)
        self._show_image(QImage.fromData(thumbnail) if thumbnail else QImage())
        self.original_shown = False
        if info is not None:
            self._token = object()
            originals = _originals()
            originals.loaded.connect(self._on_original)
            originals.load(self._token, info.path, PREVIEW_SIDE)
            self.finished.connect(self._forget_original)

        self.title = QLineEdit(info.title or "" if info else "")
        self.title.setPlaceholderText("No title")
        self.title.editingFinished.connect(self._save_title)
        path = QLabel(info.path if info else "", textFormat=Qt.TextFormat.PlainText)
        path.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        path.setWordWrap(True)
        size = QLabel(f"{info.width} × {info.height} pixels" if info else "")
        product_id, image_url = session.store.product_info(item_id)

        names = {c.id: c for c in session.categories}
        label = names.get(session.labels.get(item_id))
        status = QLabel(f"Example of <b>{html.escape(label.name)}</b>" if label is not None else "Not labelled")
        self.prediction = QLabel(self._prediction_text(item_id), textFormat=Qt.TextFormat.PlainText)

        self.scores = QTableWidget(0, 2, self)
        self.scores.setHorizontalHeaderLabels(["Category", "Score"])
        self.scores.verticalHeader().setVisible(False)
        self.scores.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.scores.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        scores = session.model.scores_of(item_id)
        for category_id, score in scores:
            category = names.get(category_id)
            row = self.scores.rowCount()
            self.scores.insertRow(row)
            cell = QTableWidgetItem(f"{category.position} · {category.name}" if category else f"#{category_id}")
            if category:
                cell.setIcon(swatch(QColor(category.colour)))
            self.scores.setItem(row, 0, cell)
            value = QTableWidgetItem(f"{score:.1%}")
            value.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.scores.setItem(row, 1, value)
        if scores:
            remainder = max(0.0, 1.0 - sum(s for _, s in scores))
            row = self.scores.rowCount()
            self.scores.insertRow(row)
            self.scores.setItem(row, 0, QTableWidgetItem("None of these"))
            value = QTableWidgetItem(f"{remainder:.1%}")
            value.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.scores.setItem(row, 1, value)

        self.why = QLabel(why_text(session, item_id, names), wordWrap=True, textFormat=Qt.TextFormat.RichText)

        form = QFormLayout()
        form.addRow("Title", self.title)
        if product_id:
            form.addRow("Product id", selectable(product_id))
        if image_url:
            form.addRow("Image URL", selectable(image_url))
        form.addRow("File", path)
        form.addRow("Size", size)
        form.addRow("Label", status)
        form.addRow("Prediction", self.prediction)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close, parent=self)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.image, 1)
        layout.addLayout(form)
        layout.addWidget(QLabel("Scores" if scores else "Not classified yet"))
        layout.addWidget(self.scores)
        layout.addWidget(self.why)
        layout.addWidget(buttons)
        self.resize(520, 720)

    def _show_image(self, image: QImage) -> None:
        if image.isNull():
            self.image.setText("No image")
            return
        pixmap = QPixmap.fromImage(image)
        if max(pixmap.width(), pixmap.height()) < PREVIEW_SIDE // 2:
            pixmap = pixmap.scaled(PREVIEW_SIDE // 2, PREVIEW_SIDE // 2, Qt.AspectRatioMode.KeepAspectRatio,
                                   Qt.TransformationMode.SmoothTransformation)
        self.image.setPixmap(pixmap)

    @Slot(object, QImage)
    def _on_original(self, token: object, image: QImage) -> None:
        if token is self._token and not image.isNull():
            self.original_shown = True
            self._show_image(image)

    @Slot()
    def _forget_original(self) -> None:
        _originals().forget(self._token)

    def _prediction_text(self, item_id: int) -> str:
        model = self.session.model
        row = model.row_of(item_id)
        if row is None:
            return ""
        index = model.index(row)
        scores = model.scores_of(item_id)
        names = {c.id: c.name for c in self.session.categories}
        return describe_prediction(names, None, index.data(PredictionRole), index.data(ConfidenceRole),
                                   scores[0] if scores else None)

    @Slot()
    def _save_title(self) -> None:
        info = self.session.model.item_info(self.item_id)
        title = self.title.text().strip()
        if info is not None and title != (info.title or ""):
            self.session.set_title(self.item_id, title)

    def done(self, result: int) -> None:
        self._save_title()
        super().done(result)
