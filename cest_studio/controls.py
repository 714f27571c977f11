"""The right-hand controls: light, reflectance, view, pose and expression. They produce an EditState (plain
values); the preview thread turns it into images. No maths here."""

from __future__ import annotations

import dataclasses

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QColorDialog,
    QComboBox,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QRadioButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from cest_studio.expression_panel import ExpressionPanel
from cest_studio.tasks import EditState
from cest_studio.widgets import LabeledSlider, to_qimage

VIEW_NAMES = {"render": "Render", "albedo": "Albedo", "shading": "Shading", "normals": "Normals"}


class ControlsPanel(QScrollArea):
    """Light, reflectance, view and pose controls. ``state_changed`` fires on every move."""

    state_changed = Signal(object)  # EditState
    load_second_requested = Signal()
    light_from_second_requested = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWidgetResizable(True)
        self.setMinimumWidth(330)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        body = QWidget()
        layout = QVBoxLayout(body)
        layout.addWidget(self._light_group())
        layout.addWidget(self._reflectance_group())
        layout.addWidget(self._view_group())
        layout.addWidget(self._pose_group())
        self.expressions = ExpressionPanel()
        self.expressions.changed.connect(lambda values: self._emit(expression=values))
        layout.addWidget(self.expressions)
        layout.addStretch(1)
        self.setWidget(body)
        # no horizontal scroll bar: wide enough for the body beside the vertical bar, values included
        scroll_bar = self.verticalScrollBar().sizeHint().width()
        self.setMinimumWidth(max(330, body.minimumSizeHint().width() + scroll_bar + 4))
        self._state = EditState()
        self._estimated_light: dict | None = None
        self._estimated_pose: tuple[float, float, float] = (0.0, 0.0, 0.0)
        self._second_light: dict | None = None
        self._presets: dict[str, dict] = {}
        self.setEnabled(False)

    # ------------------------------------------------------------------------ building

    def _light_group(self) -> QGroupBox:
        box = QGroupBox("Light")
        layout = QVBoxLayout(box)
        self.azimuth = LabeledSlider("Azimuth", -180, 180, 0, 1, 0, "°")
        self.elevation = LabeledSlider("Elevation", -90, 90, 0, 1, 0, "°")
        self.intensity = LabeledSlider("Intensity", 0, 2, 0.7, 0.01, 2)
        self.ambient = LabeledSlider("Ambient", 0, 1.5, 0.5, 0.01, 2)
        for slider in (self.azimuth, self.elevation, self.intensity, self.ambient):
            slider.valueChanged.connect(self._light_moved)
            layout.addWidget(slider)
        row = QHBoxLayout()
        self.color_button = QPushButton("Colour…")
        self.color_button.clicked.connect(self._pick_color)
        self.preset = QComboBox()
        self.preset.addItem("Presets…")
        self.preset.activated.connect(self._preset_chosen)
        row.addWidget(self.color_button)
        row.addWidget(self.preset, 1)
        layout.addLayout(row)
        row = QHBoxLayout()
        self.estimated_light_button = QPushButton("Estimated light")
        self.estimated_light_button.setToolTip("Back to the light estimated from the photo")
        self.estimated_light_button.clicked.connect(self.use_estimated_light)
        self.second_light_button = QPushButton("From another face…")
        self.second_light_button.setToolTip("Use the light estimated from a second photo")
        self.second_light_button.clicked.connect(self.light_from_second_requested)
        row.addWidget(self.estimated_light_button)
        row.addWidget(self.second_light_button)
        layout.addLayout(row)
        self.light_label = QLabel("Light: estimated from the photo")
        self.light_label.setStyleSheet("color: #9aa0a6;")
        layout.addWidget(self.light_label)
        return box

    def _reflectance_group(self) -> QGroupBox:
        box = QGroupBox("Reflectance")
        layout = QGridLayout(box)
        self.second_thumb = QLabel("No second face")
        self.second_thumb.setFixedSize(72, 72)
        self.second_thumb.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.second_thumb.setStyleSheet("background: #16181a; color: #6f757b; font-size: 9px;")
        self.second_thumb.setWordWrap(True)
        self.load_second_button = QPushButton("Load second face…")
        self.load_second_button.clicked.connect(self.load_second_requested)
        self.blend = LabeledSlider("Blend", 0, 100, 0, 1, 0, "%")
        self.blend.setToolTip("0% = this face's reflectance, 100% = the second face's (a swap)")
        self.blend.valueChanged.connect(lambda _v: self._emit())
        self.swap_button = QPushButton("Swap")
        self.swap_button.clicked.connect(lambda: self.blend.set_value(100))
        self.own_button = QPushButton("Own")
        self.own_button.clicked.connect(lambda: self.blend.set_value(0))
        layout.addWidget(self.second_thumb, 0, 0, 2, 1)
        layout.addWidget(self.load_second_button, 0, 1, 1, 2)
        buttons = QHBoxLayout()
        buttons.addWidget(self.own_button)
        buttons.addWidget(self.swap_button)
        layout.addLayout(buttons, 1, 1, 1, 2)
        layout.addWidget(self.blend, 2, 0, 1, 3)
        self.blend.setEnabled(False)
        self.swap_button.setEnabled(False)
        self.own_button.setEnabled(False)
        return box

    def _view_group(self) -> QGroupBox:
        box = QGroupBox("View")
        layout = QVBoxLayout(box)
        row = QHBoxLayout()
        self.view_buttons = QButtonGroup(self)
        for key, name in VIEW_NAMES.items():
            button = QRadioButton(name)
            button.setObjectName(f"view_{key}")
            button.setChecked(key == "render")
            self.view_buttons.addButton(button)
            button.toggled.connect(lambda on, k=key: on and self._emit())
            row.addWidget(button)
        layout.addLayout(row)
        self.composite = QCheckBox("Draw the re-render over the photo")
        self.composite.setChecked(True)
        self.composite.toggled.connect(lambda _on: self._emit())
        layout.addWidget(self.composite)
        return box

    def _pose_group(self) -> QGroupBox:
        box = QGroupBox("Pose")
        layout = QVBoxLayout(box)
        self.yaw = LabeledSlider("Yaw", -80, 80, 0, 1, 0, "°")
        self.pitch = LabeledSlider("Pitch", -60, 60, 0, 1, 0, "°")
        self.roll = LabeledSlider("Roll", -60, 60, 0, 1, 0, "°")
        for slider in (self.yaw, self.pitch, self.roll):
            slider.valueChanged.connect(self._pose_moved)
            layout.addWidget(slider)
        self.reset_pose_button = QPushButton("Reset to estimated pose")
        self.reset_pose_button.clicked.connect(self.reset_pose)
        layout.addWidget(self.reset_pose_button)
        return box

    # ------------------------------------------------------------------------ state

    def state(self) -> EditState:
        return self._state

    def sliders(self) -> dict[str, LabeledSlider]:
        return {
            "azimuth": self.azimuth,
            "elevation": self.elevation,
            "intensity": self.intensity,
            "ambient": self.ambient,
            "blend": self.blend,
            "yaw": self.yaw,
            "pitch": self.pitch,
            "roll": self.roll,
        }

    def _view(self) -> str:
        for key in VIEW_NAMES:
            if self.findChild(QRadioButton, f"view_{key}").isChecked():
                return key
        return "render"

    def _emit(self, preset: str = "", **changes) -> None:
        """A new state; ``preset`` names the light preset it applies (any other light change clears it)."""
        if preset or any(k in changes for k in ("light_mode", "azimuth", "color")):
            self.preset.setCurrentIndex(max(0, self.preset.findText(preset)) if preset else 0)
        state = dataclasses.replace(
            self._state,
            blend=self.blend.value() / 100,
            view=self._view(),
            composite=self.composite.isChecked(),
            **changes,
        )
        self._state = state
        self._update_light_label()
        self.state_changed.emit(state)

    def _light_moved(self, _value: float) -> None:
        self._emit(light_mode="settings", **self._light_values())

    def _light_values(self) -> dict:
        return {
            "azimuth": self.azimuth.value(),
            "elevation": self.elevation.value(),
            "intensity": self.intensity.value(),
            "ambient": self.ambient.value(),
        }

    def _show_light(self, light: dict) -> None:
        self.azimuth.set_value(light["azimuth"], silent=True)
        self.elevation.set_value(light["elevation"], silent=True)
        self.intensity.set_value(light["intensity"], silent=True)
        self.ambient.set_value(light["ambient"], silent=True)
        self._show_color(light.get("color", (1.0, 1.0, 1.0)))

    def _show_color(self, color) -> None:
        r, g, b = (max(0, min(255, int(round(c * 255)))) for c in color)
        text = "#000" if (r + g + b) > 380 else "#fff"
        self.color_button.setStyleSheet(f"background: rgb({r},{g},{b}); color: {text};")

    def _pick_color(self) -> None:
        r, g, b = self._state.color
        chosen = QColorDialog.getColor(QColor.fromRgbF(r, g, b), self, "Light colour")
        if chosen.isValid():
            self.set_color((chosen.redF(), chosen.greenF(), chosen.blueF()))

    def set_color(self, color: tuple[float, float, float]) -> None:
        self._show_color(color)
        self._emit(light_mode="settings", color=tuple(float(c) for c in color), **self._light_values())

    def has_presets(self) -> bool:
        return bool(self._presets)

    def set_presets(self, presets: dict[str, dict]) -> None:
        self._presets = presets
        self.preset.clear()
        self.preset.addItem("Presets…")
        for name in presets:
            self.preset.addItem(name)

    def apply_preset(self, name: str) -> None:
        light = self._presets[name]
        self._show_light(light)
        self._emit(
            light_mode="settings",
            **{k: light[k] for k in ("azimuth", "elevation", "intensity", "ambient")},
            color=tuple(light["color"]),
            preset=name,
        )

    def _preset_chosen(self, index: int) -> None:
        """The combo stays on the chosen preset until the light changes otherwise."""
        if index > 0:
            self.apply_preset(self.preset.itemText(index))

    def use_estimated_light(self) -> None:
        if self._estimated_light:
            self._show_light(self._estimated_light)
            self._emit(light_mode="estimated", **self._estimated_light)

    def use_second_light(self) -> None:
        if self._second_light is None:
            return
        self._show_light(self._second_light)
        self._emit(light_mode="other", **self._second_light)

    def _update_light_label(self) -> None:
        text = {
            "estimated": "Light: estimated from the photo",
            "settings": "Light: set by the sliders",
            "other": "Light: borrowed from the second face",
        }[self._state.light_mode]
        if self._state.light_mode == "settings" and self.preset.currentIndex() > 0:
            text = f"Light: the preset “{self.preset.currentText()}”"
        self.light_label.setText(text)

    def _pose_moved(self, _value: float) -> None:
        self._emit(pose=(self.pitch.value(), self.yaw.value(), self.roll.value()))

    def _show_pose(self, pose) -> None:
        pitch, yaw, roll = pose
        self.pitch.set_value(pitch, silent=True)
        self.yaw.set_value(yaw, silent=True)
        self.roll.set_value(roll, silent=True)

    def reset_pose(self) -> None:
        self._show_pose(self._estimated_pose)
        self._emit(pose=None)

    # ------------------------------------------------------------------------ faces

    def set_face(
        self,
        light: dict,
        pose: tuple[float, float, float],
        keep_edits: bool,
        expression: tuple[float, ...] = (),
        names: tuple[str, ...] = (),
    ) -> None:
        """A new face (or video frame): show its estimated light, pose and expression where nothing
        overrides them."""
        if names:
            self.expressions.set_face(list(names), expression, keep_edits)
            if not keep_edits:
                self._state = dataclasses.replace(self._state, expression=None)
        self._estimated_light, self._estimated_pose = dict(light), tuple(pose)
        self.setEnabled(True)
        if not keep_edits or self._state.light_mode == "estimated":
            self._show_light(light)
            self.preset.setCurrentIndex(0)
            self._state = dataclasses.replace(self._state, light_mode="estimated", **light)
        if not keep_edits or self._state.pose is None:
            self._show_pose(pose)
            self._state = dataclasses.replace(self._state, pose=None)
        self._update_light_label()

    def set_second_face(self, crop, light: dict, source: str, expression: tuple[float, ...] = ()) -> None:
        self._second_light = dict(light)
        self.expressions.set_second(expression)
        image = to_qimage(crop).scaled(
            72, 72, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation
        )
        from PySide6.QtGui import QPixmap

        self.second_thumb.setPixmap(QPixmap.fromImage(image))
        self.second_thumb.setToolTip(source)
        for widget in (self.blend, self.swap_button, self.own_button):
            widget.setEnabled(True)
        self.second_light_button.setText("Light of second face")
