"""The window's model selector: the shipped, trained and added CEST models and the landmark fit.

Loading runs on the engine thread (EngineSession.load_model); a model that fails to load leaves
the previous one selected, or falls back to the fit. Part of MainWindow (a mixin: it uses the
window's worker, session, settings, toolbar combo box and status bar).
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt

from cest_studio import file_dialogs, tasks
from cest_studio.tasks import ModelSpec
from cest_studio.widgets import timed
from cest_studio.worker import freeze_heap


class ModelsMixin:
    def trained_models(self) -> list[str]:
        value = self.settings.value("models/trained", []) or []
        return [str(v) for v in (value if isinstance(value, list) else [value])]

    def refresh_models(self, select: str | None = None) -> None:
        specs = tasks.available_models(self.trained_models())
        self.model_combo.blockSignals(True)
        self.model_combo.clear()
        for spec in specs:
            self.model_combo.addItem(spec.label, spec.key)
            self.model_combo.setItemData(
                self.model_combo.count() - 1, spec.weights or "landmark fit", Qt.ItemDataRole.ToolTipRole
            )
        keys = [s.key for s in specs]
        if select not in keys:  # None, "cest" or a model that is gone: the first CEST model, else the fit
            select = next((s.key for s in specs if s.kind == "cest"), "fit") if select != "fit" else "fit"
        self.model_combo.setCurrentIndex(keys.index(select))
        self.model_combo.blockSignals(False)
        self.train_tab.set_models(specs)

    def _model_chosen(self, index: int) -> None:
        key = self.model_combo.itemData(index)
        if self.model_info is not None and key == self.model_info.spec.key:
            return
        self.load_model(key, reopen=True)

    def load_model(self, key: str, reopen: bool = True) -> None:
        spec = ModelSpec.from_key(key, self.model_combo.currentText())
        self.statusBar().showMessage(f"Loading {spec.label or key}…")
        self.worker.submit(
            f"load {spec.label or key}",
            self.session.load_model,
            spec,
            tag="model",
            on_done=lambda info: self._model_loaded(info, reopen),
            on_error=lambda msg: self._model_failed(spec, msg),
        )

    @timed
    def _model_loaded(self, info, reopen: bool) -> None:
        freeze_heap()  # torch and the engine are imported now
        self.model_info = info
        self.settings.setValue("model/current", info.spec.key)
        index = self.model_combo.findData(info.spec.key)
        if index >= 0:
            self.model_combo.setCurrentIndex(index)
        self.statusBar().showMessage(f"Model: {info.description} (loaded in {info.seconds:.1f} s)", 6000)
        if info.presets and not self.tab.controls.has_presets():
            self.tab.controls.set_presets(info.presets)
        self.model_loaded.emit(info)
        if reopen and self.source:
            self.open_path(self.source, remember=False)

    def _model_failed(self, spec: ModelSpec, message: str) -> None:
        self.show_error(f"cannot load the model {spec.label or spec.key}: {message}")
        if self.model_info is None and spec.kind != "fit":
            self.load_model("fit", reopen=True)
            self.refresh_models("fit")
        elif self.model_info is not None:
            index = self.model_combo.findData(self.model_info.spec.key)
            self.model_combo.setCurrentIndex(max(0, index))

    def add_trained_model(self, weights: str, label: str = "") -> None:
        models = self.trained_models()
        if weights not in models:
            models.append(weights)
            self.settings.setValue("models/trained", models)
        current = self.model_combo.currentData()
        self.refresh_models(current)
        self.statusBar().showMessage(f"New model available: {label or weights}", 8000)

    def add_model_dialog(self) -> None:
        path = file_dialogs.open_weights(self, self._last_folder())
        if path:
            self.add_trained_model(path, Path(path).name)
            index = self.model_combo.findData(f"cest:{path}")
            if index >= 0:
                self.model_combo.setCurrentIndex(index)
                self._model_chosen(index)
