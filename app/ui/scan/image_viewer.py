"""A zoomable picture with an optional heat-map layer and tile-map layer: wheel to zoom under the cursor, drag
to pan, fit or 100 %. Two viewers can be linked so they zoom and scroll together (side-by-side comparison).
The pointer's place on the picture is announced, so the tile under it can be named."""
from __future__ import annotations

from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import QMouseEvent, QPixmap, QTransform, QWheelEvent
from PySide6.QtWidgets import QFrame, QGraphicsPixmapItem, QGraphicsScene, QGraphicsSimpleTextItem, QGraphicsView

MIN_ZOOM, MAX_ZOOM = 0.02, 32.0


class ImageViewer(QGraphicsView):
    zoom_changed = Signal(float)  # the scale now shown, 1.0 = one image pixel per screen pixel
    pointer_moved = Signal(float, float)  # the pointer over the picture, in the shown picture's pixels
    pointer_left = Signal()  # the pointer left the picture

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.setScene(QGraphicsScene(self))
        self.setDragMode(QGraphicsView.DragMode.ScrollHandDrag)
        self.setTransformationAnchor(QGraphicsView.ViewportAnchor.AnchorUnderMouse)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self._image = QGraphicsPixmapItem()
        self._image.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
        self._overlay = QGraphicsPixmapItem()
        self._overlay.setZValue(1)
        self._tile_map = QGraphicsPixmapItem()  # above Grad-CAM: both can be shown, the tiles on top
        self._tile_map.setZValue(2)
        self._message = QGraphicsSimpleTextItem()
        self._message.setBrush(self.palette().text())
        for item in (self._image, self._overlay, self._tile_map, self._message):
            self.scene().addItem(item)
        self.viewport().setMouseTracking(True)  # hover, not only drag, reports the pointer
        self._fitted = True
        self._partner: ImageViewer | None = None

    # ---- content -----------------------------------------------------------------------------
    def set_image(self, pixmap: QPixmap | None) -> None:
        self._message.setText("")
        self._image.setPixmap(pixmap or QPixmap())
        self.set_overlay(None)
        self.set_tile_map(None)
        self.scene().setSceneRect(QRectF(self._image.pixmap().rect()))
        self.fit()

    def show_message(self, text: str) -> None:
        """Instead of a picture: why there is none (loading, unreadable file ...)."""
        self._image.setPixmap(QPixmap())
        self.set_overlay(None)
        self.set_tile_map(None)
        self._message.setBrush(self.palette().text())  # the palette may have changed (dark mode)
        self._message.setText(text)
        self.scene().setSceneRect(self._message.boundingRect())
        self.resetTransform()

    def set_overlay(self, pixmap: QPixmap | None) -> None:
        self._overlay.setPixmap(pixmap or QPixmap())

    def set_overlay_opacity(self, opacity: float) -> None:
        self._overlay.setOpacity(opacity)

    def set_overlay_visible(self, visible: bool) -> None:
        self._overlay.setVisible(visible)

    def set_tile_map(self, pixmap: QPixmap | None) -> None:
        """A layer of any size with the picture's shape: stretched over the picture."""
        self._tile_map.setPixmap(pixmap or QPixmap())
        if pixmap is not None and not pixmap.isNull():
            self._tile_map.setScale(self._image.pixmap().width() / max(1, pixmap.width()))

    def set_tile_map_visible(self, visible: bool) -> None:
        self._tile_map.setVisible(visible)

    def tile_map_pixmap(self) -> QPixmap:
        return self._tile_map.pixmap()

    def tile_map_shown(self) -> bool:
        return self._tile_map.isVisible() and not self._tile_map.pixmap().isNull()

    def image_pixmap(self) -> QPixmap:
        return self._image.pixmap()

    def overlay_pixmap(self) -> QPixmap:
        return self._overlay.pixmap()

    def overlay_opacity(self) -> float:
        return self._overlay.opacity()

    def message(self) -> str:
        return self._message.text()

    def overlay_shown(self) -> bool:
        return self._overlay.isVisible() and not self._overlay.pixmap().isNull()

    # ---- zoom --------------------------------------------------------------------------------
    def zoom(self) -> float:
        return self.transform().m11()

    def fit(self) -> None:
        self._fitted = True
        if not self._image.pixmap().isNull():
            self.fitInView(self._image, Qt.AspectRatioMode.KeepAspectRatio)
        self._announce()

    def actual_size(self) -> None:
        self._fitted = False
        self.setTransform(QTransform())
        self._announce()

    def zoom_by(self, factor: float) -> None:
        target = min(MAX_ZOOM, max(MIN_ZOOM, self.zoom() * factor))
        self._fitted = False
        self.scale(target / self.zoom(), target / self.zoom())
        self._announce()

    def link(self, other: "ImageViewer") -> None:
        """Zoom and scroll together with `other` (both ways)."""
        self._partner, other._partner = other, self
        for mine, theirs in ((self.horizontalScrollBar(), other.horizontalScrollBar()),
                             (self.verticalScrollBar(), other.verticalScrollBar())):
            mine.valueChanged.connect(theirs.setValue)  # setValue to the same value emits nothing: no loop
            theirs.valueChanged.connect(mine.setValue)

    def wheelEvent(self, event: QWheelEvent) -> None:
        steps = event.angleDelta().y() / 120
        if steps and not self._image.pixmap().isNull():
            self.zoom_by(1.25 ** steps)
        event.accept()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        super().mouseMoveEvent(event)
        point = self.mapToScene(event.position().toPoint())
        if not self._image.pixmap().isNull() and self._image.boundingRect().contains(point):
            self.pointer_moved.emit(point.x(), point.y())
        else:
            self.pointer_left.emit()

    def leaveEvent(self, event) -> None:
        super().leaveEvent(event)
        self.pointer_left.emit()

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        if self._fitted:
            self.fit()

    def _announce(self) -> None:
        self._choose_smoothing()
        self.zoom_changed.emit(self.zoom())
        partner = self._partner
        if partner is not None and partner.transform() != self.transform():
            partner._fitted = self._fitted
            partner.setTransform(self.transform())
            partner._choose_smoothing()
            partner.horizontalScrollBar().setValue(self.horizontalScrollBar().value())
            partner.verticalScrollBar().setValue(self.verticalScrollBar().value())

    def _choose_smoothing(self) -> None:
        # Magnified, every image pixel must stay a sharp square (an examiner looks at pixels); reduced,
        # smooth filtering avoids aliasing that could look like artefacts.
        mode = (Qt.TransformationMode.FastTransformation if self.zoom() > 1.0
                else Qt.TransformationMode.SmoothTransformation)
        self._image.setTransformationMode(mode)
        self._overlay.setTransformationMode(Qt.TransformationMode.SmoothTransformation)
        self._tile_map.setTransformationMode(Qt.TransformationMode.FastTransformation)  # tiles keep sharp edges
