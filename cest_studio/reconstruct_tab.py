"""The Reconstruct tab: input with landmarks and the 2D re-render (left), the 3D viewport (centre),
the controls (right), and a timeline under them for videos. Widgets only: the main window wires
them to the worker threads."""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSlider,
    QSplitter,
    QStyle,
    QVBoxLayout,
    QWidget,
)

from cest_studio.controls import ControlsPanel
from cest_studio.viewport import Viewport
from cest_studio.widgets import ImageView


class Timeline(QWidget):
    """Frame slider, play/pause, the background reconstruction's progress and its Cancel button."""

    frame_changed = Signal(int)
    cancel_requested = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(6, 2, 6, 2)
        self.play_button = QPushButton()
        self._icons = {
            name: self.style().standardIcon(getattr(QStyle.StandardPixmap, f"SP_Media{name}"))
            for name in ("Play", "Pause")
        }  # the style's icons: no font lacks their glyph
        self.play_button.setIcon(self._icons["Play"])
        self.play_button.setFixedWidth(36)
        self.play_button.setToolTip("Play the reconstructed frames")
        self.play_button.clicked.connect(self.toggle_play)
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, 0)
        self.slider.valueChanged.connect(self.frame_changed)
        self.slider.valueChanged.connect(self._label)  # dragged or set: the counter follows
        self.frame_label = QLabel("frame 0 / 0")
        self.frame_label.setMinimumWidth(110)
        self.progress = QProgressBar()
        self.progress.setFormat("%v / %m")
        self.progress.setToolTip("Frames reconstructed so far")
        self.progress.setFixedWidth(self.progress.fontMetrics().horizontalAdvance("00000 / 00000") + 40)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel_requested)
        for widget in (self.play_button, self.slider, self.frame_label, self.progress, self.cancel_button):
            layout.addWidget(widget, 1 if widget is self.slider else 0)
        self._timer = QTimer(self)
        self._timer.timeout.connect(self._advance)
        self.available = 0  # frames reconstructed so far (the play head stops there)
        self.active = False
        self.set_active(False)  # always in the layout: showing it would resize the 3D view mid-run

    def set_active(self, active: bool) -> None:
        """A video's timeline, or a greyed bar for photos."""
        self.stop()
        for widget in (self.play_button, self.slider):
            widget.setEnabled(active)
        if not active:
            self.progress.hide()
            self.cancel_button.hide()
            self.slider.blockSignals(True)
            self.slider.setRange(0, 0)  # the handle rests at the start, not mid-way
            self.slider.blockSignals(False)
            self.frame_label.setText("no video")
        self.active = active

    def start(self, frames: int, fps: float) -> None:
        self.slider.blockSignals(True)
        self.slider.setRange(0, max(0, frames - 1))
        self.slider.setValue(0)
        self.slider.blockSignals(False)
        self.progress.setRange(0, max(1, frames))
        self.progress.setValue(0)
        self.progress.show()
        self.cancel_button.show()
        self.cancel_button.setEnabled(True)
        self._timer.setInterval(int(1000 / max(1.0, min(fps or 25, 60))))
        self.available = 0
        self.set_active(True)
        self._label()

    def set_progress(self, done: int, total: int) -> None:
        if total and total - 1 > self.slider.maximum():
            self.slider.setMaximum(total - 1)
            self.progress.setMaximum(total)
        if done > self.progress.maximum():
            self.progress.setMaximum(done)
            self.slider.setMaximum(done - 1)
        self.progress.setValue(done)
        self.available = done
        self._label()

    def finish(self, frames: int) -> None:
        if frames:
            self.slider.setMaximum(max(0, frames - 1))
        self.available = frames
        self.progress.hide()
        self.cancel_button.hide()
        self._label()

    def _label(self, *_value) -> None:
        if self.active:
            self.frame_label.setText(f"frame {self.slider.value() + 1} / {self.slider.maximum() + 1}")

    def set_frame(self, index: int) -> None:
        self.slider.setValue(index)
        self._label()

    def toggle_play(self) -> None:
        if self._timer.isActive():
            self.stop()
        else:
            self._timer.start()
            self.play_button.setIcon(self._icons["Pause"])

    def _advance(self) -> None:
        last = max(0, min(self.slider.maximum(), self.available - 1))
        nxt = self.slider.value() + 1
        self.slider.setValue(0 if nxt > last else nxt)
        self._label()

    def stop(self) -> None:
        self._timer.stop()
        self.play_button.setIcon(self._icons["Play"])


class ReconstructTab(QWidget):
    """Input + re-render | viewport | controls, and the video timeline."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.input_view = ImageView(
            "Input",
            "Open a photo or a video (Ctrl+O), or drop it here.\n\nThe detected landmarks appear on it.",
        )
        self.render_view = ImageView("Re-rendered", "The face re-rendered from its four factors")
        self.viewport = Viewport()
        self.controls = ControlsPanel()
        self.timeline = Timeline()
        self.info = QLabel("")
        self.info.setStyleSheet("color: #9aa0a6;")

        left = QSplitter(Qt.Orientation.Vertical)
        left.addWidget(self.input_view)
        left.addWidget(self.render_view)
        centre = QWidget()
        centre_layout = QVBoxLayout(centre)
        centre_layout.setContentsMargins(0, 0, 0, 0)
        centre_layout.addWidget(self.viewport, 1)
        centre_layout.addWidget(self.info)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(left)
        self.splitter.addWidget(centre)
        self.splitter.addWidget(self.controls)
        self.splitter.setStretchFactor(0, 2)
        self.splitter.setStretchFactor(1, 4)
        self.splitter.setStretchFactor(2, 0)
        self.splitter.setSizes([300, 560, 320])

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.splitter, 1)
        layout.addWidget(self.timeline)
