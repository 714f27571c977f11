"""Small widgets shared by the tabs: image views, labelled sliders, the message bar, a loss plot."""

from __future__ import annotations

import math

import numpy as np
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QImage, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSizePolicy,
    QSlider,
    QToolButton,
    QWidget,
)


def timed(method):
    """Record GUI-thread handlers that take over 15 ms in ``self.slow_ops`` (name, ms, when): the
    figures behind the event-loop latency tests."""
    import functools
    import time

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return method(self, *args, **kwargs)
        finally:
            ms = (time.perf_counter() - start) * 1000
            if ms > 15:
                ops = self.__dict__.setdefault("slow_ops", [])
                ops.append((method.__name__, round(ms, 1), round(start, 3)))
                del ops[:-200]

    return wrapper


def path_row(edit: QLineEdit, on_browse) -> QHBoxLayout:
    """A path field with a narrow "…" button beside it that calls ``on_browse``."""
    browse = QPushButton("…")
    browse.setFixedWidth(32)
    browse.clicked.connect(on_browse)
    row = QHBoxLayout()
    row.addWidget(edit, 1)
    row.addWidget(browse)
    return row


def to_qimage(array: np.ndarray) -> QImage:
    """HxWx3 (or HxW) uint8 -> a QImage that owns its pixels."""
    array = np.ascontiguousarray(array)
    if array.ndim == 2:
        h, w = array.shape
        return QImage(array.data, w, h, w, QImage.Format.Format_Grayscale8).copy()
    h, w, c = array.shape
    fmt = QImage.Format.Format_RGBA8888 if c == 4 else QImage.Format.Format_RGB888
    return QImage(array.data, w, h, c * w, fmt).copy()


def qimage_to_array(image: QImage) -> np.ndarray:
    """A QImage -> HxWx3 uint8."""
    image = image.convertToFormat(QImage.Format.Format_RGB888)
    w, h = image.width(), image.height()
    data = np.frombuffer(image.constBits(), np.uint8, count=image.bytesPerLine() * h)
    return data.reshape(h, image.bytesPerLine())[:, : 3 * w].reshape(h, w, 3).copy()


class ImageView(QWidget):
    """An image scaled to fit (aspect kept), with optional 68 landmarks drawn over it."""

    def __init__(self, title: str = "", placeholder: str = "", parent: QWidget | None = None):
        super().__init__(parent)
        self.setMinimumSize(160, 160)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self._image: QImage | None = None
        self._array: np.ndarray | None = None
        self._landmarks: np.ndarray | None = None
        self.title = title
        self.placeholder = placeholder
        self.caption = ""

    def set_image(
        self, array: np.ndarray | None, landmarks: np.ndarray | None = None, caption: str = ""
    ) -> None:
        self._array = None if array is None else np.asarray(array)
        self._image = None if array is None else to_qimage(array)
        self._landmarks = None if landmarks is None else np.asarray(landmarks, np.float32)
        self.caption = caption
        self.update()

    def array(self) -> np.ndarray | None:
        return self._array

    def _target(self) -> QRectF:
        w, h = self._image.width(), self._image.height()
        area = QRectF(self.rect()).adjusted(4, 22 if self.title else 4, -4, -4)
        scale = min(area.width() / w, area.height() / h)
        return QRectF(
            area.center().x() - w * scale / 2, area.center().y() - h * scale / 2, w * scale, h * scale
        )

    @timed
    def paintEvent(self, event) -> None:  # noqa: N802 - Qt's name
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor("#16181a"))
        painter.setPen(QColor("#c8ccd0"))
        if self.title:
            text = self.title + (f" — {self.caption}" if self.caption else "")
            painter.drawText(QRectF(6, 2, self.width() - 12, 18), Qt.AlignmentFlag.AlignLeft, text)
        if self._image is None:
            painter.setPen(QColor("#6f757b"))
            painter.drawText(
                self.rect(), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self.placeholder
            )
            return
        target = self._target()
        painter.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        painter.drawImage(target, self._image)
        if self._landmarks is not None and len(self._landmarks):
            scale = target.width() / self._image.width()
            painter.setRenderHint(QPainter.RenderHint.Antialiasing)
            painter.setPen(Qt.PenStyle.NoPen)
            painter.setBrush(QColor(80, 230, 120))
            radius = max(1.5, min(3.0, target.width() / 180))
            for x, y in self._landmarks:
                painter.drawEllipse(
                    QPointF(target.x() + (x + 0.5) * scale, target.y() + (y + 0.5) * scale), radius, radius
                )


class LabeledSlider(QWidget):
    """A horizontal slider over a float range with its name and value beside it."""

    valueChanged = Signal(float)  # noqa: N815 - Qt style

    def __init__(
        self,
        name: str,
        minimum: float,
        maximum: float,
        value: float,
        step: float = 1.0,
        decimals: int = 0,
        suffix: str = "",
        parent: QWidget | None = None,
    ):
        super().__init__(parent)
        self._min, self._step, self._decimals, self._suffix = minimum, step, decimals, suffix
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.label = QLabel(name)
        self.label.setMinimumWidth(70)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, int(round((maximum - minimum) / step)))
        self.slider.setObjectName(name)
        self.value_label = QLabel()
        self.value_label.setMinimumWidth(48)
        self.value_label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        layout.addWidget(self.label)
        layout.addWidget(self.slider, 1)
        layout.addWidget(self.value_label)
        self.slider.valueChanged.connect(self._changed)
        self.set_value(value, silent=True)

    def value(self) -> float:
        return self._min + self.slider.value() * self._step

    def set_value(self, value: float, silent: bool = False) -> None:
        position = int(round((value - self._min) / self._step))
        position = max(self.slider.minimum(), min(self.slider.maximum(), position))
        blocked = self.slider.blockSignals(silent)
        self.slider.setValue(position)
        self.slider.blockSignals(blocked)
        self._show()

    def _show(self) -> None:
        self.value_label.setText(f"{self.value():.{self._decimals}f}{self._suffix}")

    def _changed(self, _position: int) -> None:
        self._show()
        self.valueChanged.emit(self.value())


class MessageBar(QWidget):
    """A dismissable coloured line at the top of the window: errors and notices, never tracebacks."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 4, 4, 4)
        self.label = QLabel()
        self.label.setWordWrap(True)
        self.label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        close = QToolButton()
        close.setText("✕")
        close.setAutoRaise(True)
        close.clicked.connect(self.hide)
        layout.addWidget(self.label, 1)
        layout.addWidget(close)
        self.kind = ""
        policy = self.sizePolicy()
        policy.setRetainSizeWhenHidden(True)  # its line stays reserved: a message never pushes the layout
        self.setSizePolicy(policy)
        self.setFixedHeight(
            2 * self.label.fontMetrics().lineSpacing() + 10
        )  # two lines; the tooltip has it all
        self.hide()

    def show_message(self, text: str, kind: str = "error") -> None:
        colours = {
            "error": ("#5c1f1f", "#ffd7d7"),
            "info": ("#1f3b5c", "#d7e9ff"),
            "warning": ("#5c4a1f", "#fff0cc"),
        }
        bg, fg = colours.get(kind, colours["info"])
        self.setStyleSheet(f"background: {bg}; color: {fg};")
        self.setAutoFillBackground(True)
        self.kind = kind
        self.label.setText(text)
        self.label.setToolTip(text)
        self.show()

    def text(self) -> str:
        return self.label.text() if self.isVisible() else ""


class LossPlot(QWidget):
    """Loss curves (log scale) drawn with QPainter: one line per loss term."""

    COLOURS = ["#4fc3f7", "#ffb74d", "#81c784", "#e57373", "#ba68c8", "#fff176", "#90a4ae", "#f06292"]

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setMinimumHeight(160)
        self.series: dict[str, list[tuple[int, float]]] = {}

    def clear(self) -> None:
        self.series = {}
        self.update()

    def add(self, step: int, values: dict[str, float]) -> None:
        for name, value in values.items():
            if value is None or not math.isfinite(value) or value <= 0:
                continue
            points = self.series.setdefault(name, [])
            if points and points[-1][0] >= step:
                continue
            points.append((step, float(value)))
        self.update()

    @timed
    def paintEvent(self, event) -> None:  # noqa: N802
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor("#16181a"))
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        area = QRectF(self.rect()).adjusted(62, 10, -130, -22)
        points = [p for s in self.series.values() for p in s]
        painter.setPen(QColor("#6f757b"))
        if not points:
            painter.drawText(
                self.rect(), Qt.AlignmentFlag.AlignCenter, "Loss curves appear here while training"
            )
            return
        steps = [p[0] for p in points]
        logs = [math.log10(p[1]) for p in points]
        s0, s1 = min(steps), max(max(steps), min(steps) + 1)
        y0, y1 = min(logs), max(logs)
        if y1 - y0 < 1e-6:
            y0, y1 = y0 - 0.5, y1 + 0.5
        painter.drawRect(area)
        painter.drawText(QRectF(0, area.top() - 6, 58, 14), Qt.AlignmentFlag.AlignRight, f"{10**y1:.2g}")
        painter.drawText(QRectF(0, area.bottom() - 8, 58, 14), Qt.AlignmentFlag.AlignRight, f"{10**y0:.2g}")
        painter.drawText(
            QRectF(area.left(), area.bottom() + 4, 80, 14), Qt.AlignmentFlag.AlignLeft, f"step {s0}"
        )
        painter.drawText(
            QRectF(area.right() - 80, area.bottom() + 4, 80, 14), Qt.AlignmentFlag.AlignRight, f"step {s1}"
        )
        for i, (name, series) in enumerate(sorted(self.series.items())):
            colour = QColor(self.COLOURS[i % len(self.COLOURS)])
            pen = QPen(colour, 2.2 if name == "total" else 1.3)
            painter.setPen(pen)
            path = QPainterPath()
            for j, (step, value) in enumerate(series):
                x = area.left() + (step - s0) / (s1 - s0) * area.width()
                y = area.bottom() - (math.log10(value) - y0) / (y1 - y0) * area.height()
                path.moveTo(x, y) if j == 0 else path.lineTo(x, y)
            painter.drawPath(path)
            painter.drawText(
                QRectF(area.right() + 8, area.top() + 16 * i, 124, 14),
                Qt.AlignmentFlag.AlignLeft,
                f"{name} {series[-1][1]:.3g}",
            )
