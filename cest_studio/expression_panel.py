"""Expression sliders, one group per face region (brows, eyes, cheeks, mouth, jaw).

Widgets only: the sliders show the face's estimated weights; moving one emits every weight
(``changed``); "Reset to estimate" emits None (the estimate). The region grouping and the slider
labels come from engine.reconstruct.expressions (no maths here). "Second face's expression" sets the sliders
to the second face's estimate: expression transfer.
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QGroupBox, QHBoxLayout, QPushButton, QToolButton, QVBoxLayout, QWidget

from cest_studio.widgets import LabeledSlider


class ExpressionPanel(QGroupBox):
    changed = Signal(object)  # tuple of every weight, or None for the estimate

    def __init__(self, parent: QWidget | None = None):
        super().__init__("Expression", parent)
        self._layout = QVBoxLayout(self)
        self.sliders: list[LabeledSlider] = []
        self.names: list[str] = []
        self.groups: dict[str, QWidget] = {}
        self._estimate: tuple[float, ...] = ()
        self._edited = False
        self._second: tuple[float, ...] = ()
        self.reset_button = QPushButton("Reset to estimate")
        self.reset_button.clicked.connect(self.reset)
        self.second_button = QPushButton("Second face's expression")
        self.second_button.setToolTip("Wear the second face's expression (File > Open second face)")
        self.second_button.setEnabled(False)
        self.second_button.clicked.connect(self.use_second)
        row = QHBoxLayout()
        row.addWidget(self.reset_button)
        row.addWidget(self.second_button)
        self._layout.addLayout(row)

    def _build(self, names: list[str]) -> None:
        from engine.reconstruct.expressions import label, regions

        self.names = list(names)
        self.sliders = [None] * len(names)
        for region, indices in regions(names).items():
            toggle = QToolButton()
            toggle.setText(f"{region.capitalize()} ({len(indices)})")
            toggle.setCheckable(True)
            toggle.setChecked(region in ("mouth", "jaw"))
            body = QWidget()
            body_layout = QVBoxLayout(body)
            body_layout.setContentsMargins(8, 0, 0, 0)
            for i in indices:
                slider = LabeledSlider(label(names[i]), 0.0, 1.0, 0.0, 0.01, 2)
                slider.setObjectName(f"expression_{names[i]}")
                slider.setToolTip(names[i])
                slider.valueChanged.connect(self._moved)
                body_layout.addWidget(slider)
                self.sliders[i] = slider
            body.setVisible(toggle.isChecked())
            toggle.toggled.connect(body.setVisible)
            self._layout.insertWidget(self._layout.count() - 1, toggle)
            self._layout.insertWidget(self._layout.count() - 1, body)
            self.groups[region] = body

    def set_face(self, names: list[str], estimate: tuple[float, ...], keep_edits: bool) -> None:
        """A new face (or frame): show its estimate unless the sliders were moved and ``keep_edits``."""
        if not self.sliders:
            self._build(names)
        self._estimate = tuple(float(v) for v in estimate)
        if not (keep_edits and self._edited):
            self._edited = False
            self._show(self._estimate)

    def values(self) -> tuple[float, ...]:
        return tuple(slider.value() for slider in self.sliders)

    def slider(self, name: str) -> LabeledSlider:
        return self.sliders[self.names.index(name)]

    def _show(self, values) -> None:
        for slider, value in zip(self.sliders, values):
            slider.set_value(value, silent=True)

    def _moved(self, _value: float) -> None:
        self._edited = True
        self.changed.emit(self.values())

    def reset(self) -> None:
        self._edited = False
        self._show(self._estimate)
        self.changed.emit(None)

    def set_second(self, expression: tuple[float, ...]) -> None:
        self._second = tuple(expression)
        self.second_button.setEnabled(bool(self._second))

    def use_second(self) -> None:
        if self._second and self.sliders:
            self._edited = True
            self._show(self._second)
            self.changed.emit(self.values())
