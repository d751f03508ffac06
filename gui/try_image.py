"""Try an image: drop or paste a picture to see what the classifier makes of it, without importing it.

Teachable Machine's preview: a quick check of the categories on a photo from the web or the
clipboard. The image is only embedded and scored (image features, the current method); the catalog
is not touched.
"""
from __future__ import annotations

from PySide6.QtCore import QBuffer, QByteArray, QIODevice, Qt, Slot
from PySide6.QtGui import QGuiApplication, QImage, QKeySequence, QPixmap, QShortcut
from PySide6.QtWidgets import QGroupBox, QHBoxLayout, QLabel, QPushButton, QVBoxLayout

from protoshelf.gui.catalog_view import describe_prediction, percent
from protoshelf.gui.drops import dropped_paths
from protoshelf.gui.preview import decoded_by_pillow
from protoshelf.gui.session import CatalogSession

SIDE = 72
SHOWN = 3


class TryImage(QGroupBox):
    def __init__(self, session: CatalogSession, parent=None):
        super().__init__("Try an image", parent)
        self.session = session
        self.setAcceptDrops(True)
        self.picture = QLabel("Drop\nor paste\nhere", alignment=Qt.AlignmentFlag.AlignCenter)
        self.picture.setFixedSize(SIDE, SIDE)
        self.picture.setStyleSheet("border: 1px dashed palette(mid); color: palette(mid);")
        self.result = QLabel("See its predictions; it is not imported.", wordWrap=True)
        self.result.setTextFormat(Qt.TextFormat.PlainText)
        self.paste_button = QPushButton("Paste")
        self.paste_button.clicked.connect(self.paste)
        paste = QShortcut(QKeySequence.StandardKey.Paste, self, self.paste)
        paste.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        column = QVBoxLayout()
        column.addWidget(self.result, 1)
        column.addWidget(self.paste_button, 0, Qt.AlignmentFlag.AlignLeft)
        layout = QHBoxLayout(self)
        layout.addWidget(self.picture)
        layout.addLayout(column, 1)
        session.image_tried.connect(self._show_scores)

    def try_file(self, path: str) -> None:
        image = QImage(path)
        if image.isNull():
            image = decoded_by_pillow(path, SIDE * 4)
        if image.isNull():
            self.result.setText(f"Not an image I can read: {path}")
            return
        self._show_picture(image)
        self.session.try_image(path)

    def try_qimage(self, image: QImage) -> None:
        data = QByteArray()
        buffer = QBuffer(data)
        buffer.open(QIODevice.OpenModeFlag.WriteOnly)
        image.save(buffer, "PNG")
        self._show_picture(image)
        self.session.try_image(bytes(data))

    def _show_picture(self, image: QImage) -> None:
        self.picture.setPixmap(QPixmap.fromImage(image.scaled(
            SIDE, SIDE, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation)))
        self.result.setText("Classifying…")

    @Slot()
    def paste(self) -> None:
        mime = QGuiApplication.clipboard().mimeData()
        if mime is not None and mime.hasImage():
            self.try_qimage(QImage(mime.imageData()))
        elif mime is not None and (paths := dropped_paths(mime)):
            self.try_file(paths[0])
        else:
            self.result.setText("The clipboard holds no image.")

    @Slot(list)
    def _show_scores(self, scores: list) -> None:
        if not scores:
            self.result.setText("Label a few examples first.")
            return
        names = {c.id: c.name for c in self.session.categories}
        best, score = scores[0]
        verdict = describe_prediction(names, None, best if score >= self.session.threshold else -1, score, scores[0])
        others = ", ".join(f"{names.get(c, '?')} {percent(s)}" for c, s in scores[1:SHOWN])
        self.result.setText(verdict + (f"\nthen {others}" if others else ""))

    def dragEnterEvent(self, event) -> None:
        if dropped_paths(event.mimeData()) or event.mimeData().hasImage():
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event) -> None:
        mime = event.mimeData()
        event.acceptProposedAction()
        if paths := dropped_paths(mime):
            self.try_file(paths[0])
        elif mime.hasImage():
            self.try_qimage(QImage(mime.imageData()))
