"""The catalog grid: uniform cells painted by a delegate.

Each cell shows the thumbnail, a badge in the predicted category's colour with the confidence
(a grey outline reading "Unassigned" when the classifier is unsure), a check mark and a coloured
frame on labelled examples, and the elided title. The cells are equal, so the view places them by
arithmetic and stays as quick at a million items as at a hundred. Number keys label the selection,
A or Enter accepts a suggested label, right-click offers "Show similar"; files dropped on the grid
are imported unlabelled.
"""
from __future__ import annotations

import numpy as np
from cachetools import LRUCache
from PySide6.QtCore import (
    QEvent, QItemSelection, QItemSelectionModel, QModelIndex, QPersistentModelIndex, QPoint, QRect, QRectF, QSize, QSizeF, Qt,
    Signal, Slot,
)
from PySide6.QtGui import (
    QDrag, QColor, QFont, QFontMetrics, QKeyEvent, QPainter, QPainterPath, QPalette, QPen, QPixmap, QRegion,
)
from PySide6.QtWidgets import (
    QAbstractItemView, QMenu, QRubberBand, QStyle, QStyledItemDelegate, QStyleOptionViewItem, QToolTip,
)

from protoshelf.gui.catalog_model import (
    ConfidenceRole, DoubtRole, ItemIdRole, LabelRole, NOT_CLASSIFIED, PredictionRole, CatalogModel,
)
from protoshelf.gui.drops import dropped_paths, item_ids_mime
from protoshelf.gui.thumbnails import ThumbnailCache

THUMB = 128
PAD = 8
CELL = QSize(THUMB + 2 * PAD + 8, THUMB + 64)
GAP = 6
UNASSIGNED_COLOUR = QColor("#8a8f98")
DOUBT_COLOUR = QColor("#e8a317")
EMPTY_CATALOG = ("No products yet.\n\nDrop image files or folders here, or use File ▸ Import folder… (Ctrl+I).\n"
                 "Then make a category (Edit ▸ New category…) and drag a few examples onto it.")
NO_MATCHES = "No items match what is shown. Choose “All items” in Show, or clear the search."


def text_colour_on(background: QColor) -> QColor:
    """Black or white, whichever reads better on the badge colour (WCAG relative luminance)."""
    def linear(c: float) -> float:
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    red, green, blue = (linear(c) for c in (background.redF(), background.greenF(), background.blueF()))
    luminance = 0.2126 * red + 0.7152 * green + 0.0722 * blue
    return QColor("#111111") if luminance > 0.35 else QColor("#ffffff")


def placeholder_colour(base: QColor, text: QColor) -> QColor:
    """The square shown until a thumbnail arrives: the background tinted a little toward the text colour."""
    mix = lambda a, b: round(0.88 * a + 0.12 * b)  # noqa: E731
    return QColor(mix(base.red(), text.red()), mix(base.green(), text.green()), mix(base.blue(), text.blue()))


def _rendered(size: QSize, pixel_ratio: float, draw) -> QPixmap:
    """A transparent pixmap of `size` (device-independent pixels) with `draw(painter)` on it."""
    pixmap = QPixmap(size * pixel_ratio)
    pixmap.setDevicePixelRatio(pixel_ratio)
    pixmap.fill(Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    draw(painter)
    painter.end()
    return pixmap


def percent(value: float) -> str:
    """A confidence as people read it: never "100%" (a calibrated score is never certain), and "<1%"
    rather than "0%" for a small chance."""
    if value >= 0.995:
        return ">99%"
    return "<1%" if value < 0.005 else f"{value:.0%}"


def describe_prediction(names: dict[int, str], label, predicted: int, confidence, closest=None) -> str:
    """The badge in words, with the full name and what the percentage is of: "Unassigned · closest
    Fruit 22%". `closest` is (category id, score) of the best category, for unassigned items."""
    if label is not None:
        return f"Example of {names.get(label, '?')}"
    if predicted == NOT_CLASSIFIED:
        return "Not classified yet"
    if predicted < 0:
        if closest is None:
            return f"Unassigned · {percent(confidence)} for the closest category"
        return f"Unassigned · closest {names.get(closest[0], '?')} {percent(closest[1])}"
    return f"Predicted {names.get(predicted, '?')} {percent(confidence)}"


def describe_doubt(names: dict[int, str], doubt) -> str:
    """Why a labelled example is listed as likely wrong, from its held-out scores."""
    labelled, looks = names.get(doubt.labelled, "?"), names.get(doubt.predicted, "?")
    return (f"Likely wrong: held out, it scores {percent(doubt.own_score)} for {labelled} "
            f"and {percent(doubt.predicted_score)} for {looks}; it looks like {looks}")


def badge_text(metrics: QFontMetrics, name: str, suffix: str, width: int) -> str:
    """The name cut at its end to fit, then the percentage whole: "Clothing & acc… 87%"."""
    return metrics.elidedText(name, Qt.TextElideMode.ElideRight, width - metrics.horizontalAdvance(suffix)) + suffix


def count_badge(count: int, palette: QPalette) -> QPixmap:
    """The drag image: "3 items" in a small pill in the selection colour."""
    text = f"{count:,} item{'s' if count != 1 else ''}"
    font = QFont()
    font.setBold(True)
    size = QSize(QFontMetrics(font).horizontalAdvance(text) + 20, 24)
    colour = palette.color(QPalette.ColorRole.Highlight)

    def draw(p: QPainter) -> None:
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(colour)
        p.drawRoundedRect(QRectF(0, 0, size.width(), size.height()), 12, 12)
        p.setFont(font)
        p.setPen(text_colour_on(colour))
        p.drawText(QRectF(0, 0, size.width(), size.height()), Qt.AlignmentFlag.AlignCenter, text)

    return _rendered(size, 1.0, draw)


class CatalogDelegate(QStyledItemDelegate):
    def __init__(self, thumbnails: ThumbnailCache, parent=None):
        super().__init__(parent)
        self.thumbnails = thumbnails
        self.categories: dict[int, tuple[str, QColor]] = {}
        self._waiting: LRUCache = LRUCache(4096)
        self._pills: LRUCache = LRUCache(2048)
        thumbnails.loaded.connect(self._on_thumbnail_loaded)

    def set_categories(self, categories: dict[int, tuple[str, QColor]]) -> None:
        self.categories = categories

    def sizeHint(self, option: QStyleOptionViewItem, index: QModelIndex) -> QSize:
        return CELL

    def tooltip(self, index: QModelIndex) -> str:
        """The item's name and path, then its badge in full words (badges elide long names)."""
        predicted, label = index.data(PredictionRole), index.data(LabelRole)
        scores = index.model().scores_of(index.data(ItemIdRole)) if predicted is not None and predicted < 0 else []
        names = {category_id: name for category_id, (name, _) in self.categories.items()}
        badge = describe_prediction(names, label, predicted, index.data(ConfidenceRole), scores[0] if scores else None)
        doubt = index.data(DoubtRole)
        if doubt is not None:
            badge += f"\n{describe_doubt(names, doubt)}"
        return f"{index.data(Qt.ItemDataRole.ToolTipRole) or ''}\n{badge}".strip()

    def helpEvent(self, event, view, option, index) -> bool:
        if event.type() == QEvent.Type.ToolTip and index.isValid():
            QToolTip.showText(event.globalPos(), self.tooltip(index), view)
            return True
        return super().helpEvent(event, view, option, index)

    def paint(self, painter: QPainter, option: QStyleOptionViewItem, index: QModelIndex) -> None:
        painter.save()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        cell = QRectF(option.rect).adjusted(2, 2, -2, -2)
        palette = option.palette
        if option.state & QStyle.StateFlag.State_Selected:
            highlight = QColor(palette.color(QPalette.ColorRole.Highlight))
            highlight.setAlpha(70)
            painter.setPen(QPen(palette.color(QPalette.ColorRole.Highlight), 2))
            painter.setBrush(highlight)
            painter.drawRoundedRect(cell, 8, 8)

        item_id = index.data(ItemIdRole)
        label = index.data(LabelRole)
        image_rect = QRectF(cell.center().x() - THUMB / 2, cell.top() + PAD, THUMB, THUMB)
        self._paint_thumbnail(painter, image_rect, item_id, index, palette)
        doubt = index.data(DoubtRole) if label is not None else None
        if label is not None:
            self._paint_example_marker(painter, image_rect, self._colour(label))
        if doubt is not None:
            self._paint_doubt_marker(painter, image_rect)

        badge_rect = QRectF(cell.left() + 6, image_rect.bottom() + 6, cell.width() - 12, 22)
        self._paint_badge(painter, badge_rect, label, index.data(PredictionRole), index.data(ConfidenceRole), doubt)

        title_rect = QRect(int(cell.left()) + 4, int(badge_rect.bottom()) + 3, int(cell.width()) - 8, 20)
        painter.setPen(palette.color(QPalette.ColorRole.Text))
        title = QFontMetrics(option.font).elidedText(index.data() or "", Qt.TextElideMode.ElideRight, title_rect.width())
        painter.drawText(title_rect, Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignVCenter, title)
        painter.restore()

    def _colour(self, category_id: int) -> QColor:
        return self.categories.get(category_id, ("?", UNASSIGNED_COLOUR))[1]

    def _paint_thumbnail(
        self, painter: QPainter, rect: QRectF, item_id: int, index: QModelIndex, palette: QPalette
    ) -> None:
        image = self.thumbnails.get(item_id)
        if image is None or image.isNull():
            if image is None:
                self._waiting[item_id] = QPersistentModelIndex(index)
            # Opaque, on whole pixels: a translucent or antialiased square costs more than the rest of the cell.
            colour = placeholder_colour(palette.color(QPalette.ColorRole.Base), palette.color(QPalette.ColorRole.Text))
            painter.fillRect(rect.toRect(), colour)
            return
        target = QRectF(0, 0, image.width(), image.height())
        target.moveCenter(rect.center())
        painter.drawImage(target.topLeft().toPoint(), image)

    def _paint_example_marker(self, painter: QPainter, rect: QRectF, colour: QColor) -> None:
        """Labelled examples: a frame in their category's colour and a check mark in a disc."""
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.setPen(QPen(colour, 3))
        painter.drawRoundedRect(rect.adjusted(-3, -3, 3, 3), 6, 6)
        disc = QRectF(rect.right() - 20, rect.top() - 6, 26, 26)
        painter.setPen(QPen(QColor("white"), 2))
        painter.setBrush(colour)
        painter.drawEllipse(disc)
        tick = QPainterPath()
        tick.moveTo(disc.left() + 7, disc.center().y())
        tick.lineTo(disc.left() + 11.5, disc.bottom() - 8)
        tick.lineTo(disc.right() - 6.5, disc.top() + 8)
        painter.setPen(QPen(text_colour_on(colour), 2.6, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawPath(tick)

    @staticmethod
    def _paint_doubt_marker(painter: QPainter, rect: QRectF) -> None:
        """A likely mislabelled example: an amber disc with "!" opposite the example's check mark."""
        disc = QRectF(rect.left() - 6, rect.top() - 6, 26, 26)
        painter.save()
        painter.setPen(QPen(QColor("white"), 2))
        painter.setBrush(DOUBT_COLOUR)
        painter.drawEllipse(disc)
        font = QFont(painter.font())
        font.setBold(True)
        painter.setFont(font)
        painter.setPen(text_colour_on(DOUBT_COLOUR))
        painter.drawText(disc, Qt.AlignmentFlag.AlignCenter, "!")
        painter.restore()

    def _paint_badge(self, painter: QPainter, rect: QRectF, label, predicted: int, confidence, doubt=None) -> None:
        """`doubt`: a likely-wrong example's badge adds its own category's held-out score."""
        suffix = ""
        if label is not None:
            name, colour = self.categories.get(label, ("?", UNASSIGNED_COLOUR))
            text, outline = name, False
            if doubt is not None:
                suffix = f" {percent(doubt.own_score)}?"
        elif predicted == NOT_CLASSIFIED:
            colour, text, outline = UNASSIGNED_COLOUR, "not classified yet", True
        elif predicted < 0:
            colour, text, suffix, outline = UNASSIGNED_COLOUR, "Unassigned", f" {percent(confidence)}", True
        else:
            name, colour = self.categories.get(predicted, ("?", UNASSIGNED_COLOUR))
            text, suffix, outline = name, f" {percent(confidence)}", False
        key = (text, suffix, colour.rgba(), outline, int(rect.width()), int(rect.height()), painter.font().key())
        pill = self._pills.get(key)
        if pill is None:
            pill = self._pills[key] = self._render_pill(painter, rect.size(), text, colour, outline, suffix)
        painter.drawPixmap(int(rect.center().x() - pill.deviceIndependentSize().width() / 2), int(rect.top()), pill)

    @staticmethod
    def _render_pill(
        painter: QPainter, space: QSizeF, text: str, colour: QColor, outline: bool, suffix: str = ""
    ) -> QPixmap:
        """A badge drawn once per text and colour, then reused: the grid shows few distinct ones.
        A long name is cut at its end, never the percentage after it (the tooltip has it whole)."""
        font = QFont(painter.font())
        font.setPointSizeF(max(7.0, font.pointSizeF() * 0.9))
        font.setBold(not outline)
        metrics = QFontMetrics(font)
        text = badge_text(metrics, text, suffix, int(space.width()) - 12)
        size = QSize(int(min(space.width(), metrics.horizontalAdvance(text) + 16)), int(space.height()))

        def draw(p: QPainter) -> None:
            p.setRenderHint(QPainter.RenderHint.Antialiasing)
            p.setFont(font)
            pill = QRectF(0.5, 0.5, size.width() - 1, size.height() - 1)
            if outline:
                p.setPen(QPen(colour, 1.2, Qt.PenStyle.DashLine))
                p.setBrush(Qt.BrushStyle.NoBrush)
                p.drawRoundedRect(pill, pill.height() / 2, pill.height() / 2)
                p.setPen(colour.darker(130))
            else:
                p.setPen(Qt.PenStyle.NoPen)
                p.setBrush(colour)
                p.drawRoundedRect(pill, pill.height() / 2, pill.height() / 2)
                p.setPen(text_colour_on(colour))
            p.drawText(pill, Qt.AlignmentFlag.AlignCenter, text)

        return _rendered(size, painter.device().devicePixelRatioF(), draw)

    @Slot(int)
    def _on_thumbnail_loaded(self, item_id: int) -> None:
        index = self._waiting.pop(item_id, None)
        if index is not None and index.isValid() and index.data(ItemIdRole) == item_id:
            index.model().notify_changed(index)


class CatalogView(QAbstractItemView):
    """A grid of equal cells whose geometry is arithmetic: row r sits in line r // columns.

    QListView's icon mode lays out and indexes every item when it is shown (a million model calls
    from C++ into Python); here opening, scrolling and hit-testing cost the same at 100 items and at
    a million, and only the visible cells are ever asked for.
    """

    assign_requested = Signal(int)
    unlabel_requested = Signal()
    accept_requested = Signal()
    similar_requested = Signal(int)
    files_dropped = Signal(list)
    selection_left_view = Signal(int)
    new_category_requested = Signal()
    pick_requested = Signal()

    def __init__(self, thumbnails: ThumbnailCache, parent=None):
        super().__init__(parent)
        self._grid = CELL + QSize(GAP, GAP)
        self._columns = 1
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setDragDropMode(QAbstractItemView.DragDropMode.DragDrop)
        self.setDragEnabled(True)
        self.viewport().setAcceptDrops(True)
        self.setDefaultDropAction(Qt.DropAction.CopyAction)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setVerticalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.delegate = CatalogDelegate(thumbnails, self)
        self.setItemDelegate(self.delegate)
        self._kept_selection: tuple[np.ndarray, int | None, int] = (np.empty(0, np.int64), None, 0)
        self._band = QRubberBand(QRubberBand.Shape.Rectangle, self.viewport())
        self._band_origin = QPoint()
        self.extend_menu = None
        self.empty_text = EMPTY_CATALOG

    def setModel(self, model: CatalogModel) -> None:
        super().setModel(model)
        model.modelAboutToBeReset.connect(self._remember_selection)
        model.modelReset.connect(self._restore_selection)

    def mousePressEvent(self, event) -> None:
        self._band_origin = event.position().toPoint() + QPoint(0, self.verticalOffset())
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event) -> None:
        """Show the band while a drag from empty space selects cells (the selecting is the base class's)."""
        super().mouseMoveEvent(event)
        if self.state() == QAbstractItemView.State.DragSelectingState:
            origin = self._band_origin - QPoint(0, self.verticalOffset())
            self._band.setGeometry(QRect(origin, event.position().toPoint()).normalized())
            self._band.show()

    def mouseReleaseEvent(self, event) -> None:
        self._band.hide()
        super().mouseReleaseEvent(event)

    # -- geometry: everything follows from the viewport width and the row count --------------------

    def gridSize(self) -> QSize:
        return QSize(self._grid)

    def _count(self) -> int:
        model = self.model()
        return model.rowCount(self.rootIndex()) if model is not None else 0

    def _lines(self) -> int:
        return -(-self._count() // self._columns)

    def updateGeometries(self) -> None:
        """Columns share the viewport's width (no gap on the right); the scroll range is lines × height."""
        width, height = self.viewport().width(), self.viewport().height()
        self._columns = max(1, width // (CELL.width() + GAP))
        self._grid = QSize(max(CELL.width() + GAP, width // self._columns), CELL.height() + GAP)
        bar = self.verticalScrollBar()
        bar.setRange(0, max(0, self._lines() * self._grid.height() - height))
        bar.setPageStep(height)
        bar.setSingleStep(40)
        super().updateGeometries()

    def _cell(self, row: int) -> QRect:
        """Where row `row` is drawn, in viewport coordinates: its grid cell less the gap around it."""
        line, column = divmod(row, self._columns)
        w, h = self._grid.width(), self._grid.height()
        top = line * h - self.verticalOffset()
        return QRect(column * w, top, w, h).adjusted(GAP // 2, GAP // 2, -(GAP - GAP // 2), -(GAP - GAP // 2))

    def visualRect(self, index: QModelIndex) -> QRect:
        return self._cell(index.row()) if index.isValid() else QRect()

    def indexAt(self, point: QPoint) -> QModelIndex:
        x, y = point.x(), point.y() + self.verticalOffset()
        column = x // self._grid.width()
        row = (y // self._grid.height()) * self._columns + column
        if x < 0 or y < 0 or column >= self._columns or row >= self._count():
            return QModelIndex()
        return self.model().index(row, 0, self.rootIndex())

    def horizontalOffset(self) -> int:
        return 0

    def verticalOffset(self) -> int:
        return self.verticalScrollBar().value()

    def isIndexHidden(self, index: QModelIndex) -> bool:
        return False

    def scrollContentsBy(self, dx: int, dy: int) -> None:
        self.viewport().scroll(dx, dy)

    def scrollTo(self, index: QModelIndex, hint=QAbstractItemView.ScrollHint.EnsureVisible) -> None:
        if not index.isValid():
            return
        rect, height = self.visualRect(index), self.viewport().height()
        Hint = QAbstractItemView.ScrollHint
        bar = self.verticalScrollBar()
        if hint == Hint.PositionAtTop or (hint == Hint.EnsureVisible and rect.top() < 0):
            bar.setValue(bar.value() + rect.top() - GAP // 2)
        elif hint == Hint.PositionAtBottom or (hint == Hint.EnsureVisible and rect.bottom() > height):
            bar.setValue(bar.value() + rect.bottom() + GAP - height)
        elif hint == Hint.PositionAtCenter:
            bar.setValue(bar.value() + rect.center().y() - height // 2)

    def moveCursor(self, action, modifiers) -> QModelIndex:
        """Arrow keys move by a cell or a line, Page keys by a screenful, Home/End to either end."""
        count = self._count()
        if not count:
            return QModelIndex()
        current = self.currentIndex()
        Move = QAbstractItemView.CursorAction
        page = max(1, self.viewport().height() // self._grid.height()) * self._columns
        steps = {
            Move.MoveLeft: -1, Move.MovePrevious: -1, Move.MoveRight: 1, Move.MoveNext: 1,
            Move.MoveUp: -self._columns, Move.MoveDown: self._columns,
            Move.MovePageUp: -page, Move.MovePageDown: page,
        }
        if action == Move.MoveHome or not current.isValid():
            row = 0
        elif action == Move.MoveEnd:
            row = count - 1
        else:
            row = current.row() + steps.get(action, 0)
        return self.model().index(min(max(row, 0), count - 1), 0, self.rootIndex())

    def setSelection(self, rect: QRect, command) -> None:
        """A click, shift-click or shift-arrow selects the items between its two ends in reading
        order, as a file manager does; dragging a band with the mouse selects the cells it covers."""
        first, last = self.indexAt(rect.topLeft()), self.indexAt(rect.bottomRight())
        if self.state() != QAbstractItemView.State.DragSelectingState and first.isValid() and last.isValid():
            selection = QItemSelection(*sorted((first, last), key=QModelIndex.row))
        else:
            selection = self._cells_under(rect.normalized())
        self.selectionModel().select(selection, command)

    def _cells_under(self, rect: QRect) -> QItemSelection:
        """The cells a rectangle of the viewport touches, one range per line."""
        rect = rect.translated(0, self.verticalOffset())
        w, h, count = self._grid.width(), self._grid.height(), self._count()
        first_column, last_column = max(0, rect.left() // w), min(self._columns - 1, rect.right() // w)
        selection = QItemSelection()
        for line in range(max(0, rect.top() // h), min(self._lines() - 1, rect.bottom() // h) + 1):
            start, stop = line * self._columns + first_column, min(count - 1, line * self._columns + last_column)
            if start <= stop:
                selection.select(self.model().index(start, 0, self.rootIndex()),
                                 self.model().index(stop, 0, self.rootIndex()))
        return selection

    def visualRegionForSelection(self, selection: QItemSelection) -> QRegion:
        """Exact cells for a small selection; after select-all on a big catalog, the whole viewport."""
        if sum(r.height() for r in selection) > 256:
            return QRegion(self.viewport().rect())
        region = QRegion()
        for selected in selection:
            for row in range(selected.top(), selected.bottom() + 1):
                region += self._cell(row)
        return region

    def paintEvent(self, event) -> None:
        """Paint the cells in the exposed area, and only those; an empty grid says how to fill it."""
        count = self._count()
        if not count:
            painter = QPainter(self.viewport())
            painter.setPen(self.palette().color(QPalette.ColorRole.PlaceholderText))
            painter.drawText(self.viewport().rect().adjusted(24, 24, -24, -24),
                             Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self.empty_text)
            painter.end()
            return
        exposed = event.rect()
        h, offset = self._grid.height(), self.verticalOffset()
        first = max(0, (offset + exposed.top()) // h) * self._columns
        last = min(count - 1, ((offset + exposed.bottom()) // h + 1) * self._columns - 1)
        option = QStyleOptionViewItem()
        self.initViewItemOption(option)
        base_state = option.state & ~(QStyle.StateFlag.State_HasFocus | QStyle.StateFlag.State_Selected)
        selection, current = self.selectionModel(), self.currentIndex()
        painter = QPainter(self.viewport())
        for row in range(first, last + 1):
            index = self.model().index(row, 0, self.rootIndex())
            option.rect = self._cell(row)
            option.state = base_state
            if selection.isSelected(index):
                option.state |= QStyle.StateFlag.State_Selected
            if index == current and self.hasFocus():
                option.state |= QStyle.StateFlag.State_HasFocus
            self.delegate.paint(painter, option, index)
        painter.end()

    def startDrag(self, actions) -> None:
        """Items dragged to a category: a small badge with the count, so the category list stays in sight."""
        ids = self.selected_ids()
        if not ids:
            return
        drag = QDrag(self)
        # the ids, not one model index per selected row: a drag of 100,000 stays instant
        drag.setMimeData(item_ids_mime(self.model().store.path, ids))
        drag.setPixmap(count_badge(len(ids), self.palette()))
        drag.setHotSpot(QPoint(-8, -8))
        drag.exec(Qt.DropAction.CopyAction)

    def selected_rows(self) -> np.ndarray:
        """Read from the selection's ranges: select-all on 100,000 items is one range, not 100,000 indexes."""
        ranges = [np.arange(r.top(), r.bottom() + 1) for r in self.selectionModel().selection()]
        return np.unique(np.concatenate(ranges)) if ranges else np.empty(0, np.int64)

    def selected_ids(self) -> list[int]:
        return self.model().item_ids(self.selected_rows())

    def keyPressEvent(self, event: QKeyEvent) -> None:
        key = event.key()
        current = self.currentIndex()
        arrows = (Qt.Key.Key_Left, Qt.Key.Key_Right, Qt.Key.Key_Up, Qt.Key.Key_Down)
        if key in arrows and current.isValid() and not self.selectionModel().hasSelection():
            # The cursor stayed where a selected item left the view: the first arrow selects that place.
            self.selectionModel().select(current, QItemSelectionModel.SelectionFlag.ClearAndSelect)
        elif Qt.Key.Key_1 <= key <= Qt.Key.Key_9 and not event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier:
            self.assign_requested.emit(key - Qt.Key.Key_1 + 1)
        elif key in (Qt.Key.Key_0, Qt.Key.Key_Backspace) and not event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier:
            self.unlabel_requested.emit()
        elif key in (Qt.Key.Key_A, Qt.Key.Key_Return, Qt.Key.Key_Enter) and not (
            event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier
        ):
            self.accept_requested.emit()
        elif key == Qt.Key.Key_N and not event.modifiers():
            self.new_category_requested.emit()
        elif key in (Qt.Key.Key_L, Qt.Key.Key_Slash) and not event.modifiers() & ~Qt.KeyboardModifier.ShiftModifier:
            self.pick_requested.emit()
        else:
            super().keyPressEvent(event)

    def item_menu(self, index: QModelIndex) -> QMenu:
        """What right-clicking an item offers; `extend_menu(menu)`, when set, adds the window's entries."""
        menu = QMenu(self)
        item_id = index.data(ItemIdRole)
        if self.extend_menu is not None:
            self.extend_menu(menu)
        menu.addAction("Show similar", lambda: self.similar_requested.emit(item_id))
        return menu

    def contextMenuEvent(self, event) -> None:
        index = self.indexAt(event.pos())
        if not index.isValid():
            return
        if not self.selectionModel().isSelected(index):
            self.setCurrentIndex(index)  # right-click acts on the item under the pointer, as file managers do
        menu = self.item_menu(index)
        menu.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        menu.popup(event.globalPos())

    def dragEnterEvent(self, event) -> None:
        """Files from outside may land on the grid; our own items dragged over it are no drop."""
        if event.mimeData().hasUrls():
            event.acceptProposedAction()
        else:
            event.ignore()

    dragMoveEvent = dragEnterEvent

    def dropEvent(self, event) -> None:
        paths = dropped_paths(event.mimeData())
        if paths:
            event.acceptProposedAction()
            self.files_dropped.emit(paths)
        else:
            event.ignore()

    @Slot()
    def _remember_selection(self) -> None:
        model: CatalogModel = self.model()
        current = self.currentIndex()
        self._kept_selection = (
            np.asarray(model.item_ids(self.selected_rows()), np.int64),
            model.item_id(current.row()) if current.isValid() else None,
            current.row() if current.isValid() else 0,
        )

    @Slot()
    def _restore_selection(self) -> None:
        """After a refilter keep the same items selected. Selected items that left the view are not
        replaced by their neighbours: the next number key would label an item the user never chose.
        The cursor stays at the same place, unselected, and `selection_left_view` says so."""
        model: CatalogModel = self.model()
        ids, current_id, current_row = self._kept_selection
        if current_id is None and not len(ids):
            return
        rows = np.flatnonzero(np.isin(model.visible_ids(), ids))
        if len(ids) and not len(rows):
            self.selection_left_view.emit(len(ids))
        if not model.rowCount():
            return
        current = model.row_of(current_id) if current_id is not None else None
        if current is None:
            current = min(current_row, model.rowCount() - 1)
        selection = QItemSelection()
        for start, stop in _runs(rows):
            selection.select(model.index(start), model.index(stop))
        flags = QItemSelectionModel.SelectionFlag
        self.selectionModel().setCurrentIndex(model.index(current), flags.NoUpdate)
        self.selectionModel().select(selection, flags.ClearAndSelect)


def _runs(rows: np.ndarray):
    """Consecutive runs in sorted rows, as (first, last) pairs: a selection of ranges, not cells."""
    if not len(rows):
        return
    breaks = np.flatnonzero(np.diff(rows) != 1)
    starts = np.concatenate([[rows[0]], rows[breaks + 1]])
    stops = np.concatenate([rows[breaks], [rows[-1]]])
    yield from zip(starts.tolist(), stops.tolist())
