"""The Train tab: choose videos or folders of clips, a starting model and settings; start, stop and
resume a run (a child process: ``python -m engine.train``); follow its losses, samples, progress
and time left. When a run ends, its weights become a model of the Reconstruct tab."""

from __future__ import annotations

import json
import time
from pathlib import Path

from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QPushButton,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from cest_studio import file_dialogs
from cest_studio.tasks import ModelSpec
from cest_studio.train_monitor import RunMonitor
from cest_studio.train_setup import (
    default_recipe,
    default_runs_folder,
    holds_run,
    new_run_folder,
    recipe_entries,
    shipped_index,
)
from cest_studio.widgets import path_row, timed
from cest_studio.worker import EngineWorker, TrainingProcess


class TrainTab(QWidget):
    """Training runs as a child process; this tab only writes its config, starts and watches it."""

    model_trained = Signal(str, str)  # weights path, label
    error = Signal(str)
    notice = Signal(str)
    status_changed = Signal(dict)  # the run's status.json, each time it changes

    def __init__(self, worker: EngineWorker, session, settings: QSettings, parent: QWidget | None = None):
        super().__init__(parent)
        self.worker, self.session, self.settings = worker, session, settings
        self.process = TrainingProcess(self)
        self.process.output.connect(self._output)
        self.process.finished.connect(self._finished)
        self._poll = QTimer(self)
        self._poll.setInterval(400)
        self._poll.timeout.connect(self.poll_status)
        self.out_dir: Path | None = None
        self.status: dict = {}
        self._last_status_time = None
        self._started_at = 0.0
        self._models: list[ModelSpec] = []
        self._build()
        self._restore()
        self._set_running(False)

    # ------------------------------------------------------------------------ layout

    def _build(self) -> None:
        data = QGroupBox("Data: videos of people, or folders of clips")
        data_layout = QVBoxLayout(data)
        self.videos = QListWidget()
        self.videos.setMinimumHeight(80)
        row = QHBoxLayout()
        add_videos = QPushButton("Add videos…")
        add_videos.clicked.connect(self._add_videos)
        add_folder = QPushButton("Add folder…")
        add_folder.clicked.connect(self._add_folder)
        remove = QPushButton("Remove")
        remove.clicked.connect(
            lambda: [self.videos.takeItem(self.videos.row(i)) for i in self.videos.selectedItems()]
        )
        for button in (add_videos, add_folder, remove):
            row.addWidget(button)
        data_layout.addWidget(self.videos)
        data_layout.addLayout(row)
        hint = QLabel(
            "With no data chosen, the recipe's own data is used (synthetic faces for the smoke recipe)."
        )
        hint.setWordWrap(True)
        hint.setStyleSheet("color: #9aa0a6;")
        data_layout.addWidget(hint)

        setup = QGroupBox("Model and settings")
        form = QFormLayout(setup)
        self.start_model = QComboBox()
        self.recipe = QComboBox()
        self.steps = QSpinBox()
        self.steps.setRange(1, 10_000_000)
        self.steps.setValue(300)
        self.lr = QDoubleSpinBox()
        self.lr.setDecimals(6)
        self.lr.setRange(1e-6, 1.0)
        self.lr.setSingleStep(1e-4)
        self.lr.setValue(1e-4)
        self.clips = QSpinBox()
        self.clips.setRange(1, 256)
        self.clips.setValue(2)
        self.device = QComboBox()
        self.device.addItems(["cpu", "cuda"])
        self.out_edit = QLineEdit()
        self.out_edit.setPlaceholderText(
            f"a new folder in {default_runs_folder()}, named when you press Start"
        )
        out_row = path_row(self.out_edit, self._choose_out)
        form.addRow("Start from", self.start_model)
        form.addRow("Recipe", self.recipe)
        form.addRow("Steps", self.steps)
        form.addRow("Learning rate", self.lr)
        form.addRow("Clips per batch", self.clips)
        form.addRow("Device", self.device)
        form.addRow("Run folder", out_row)
        self.recipe.currentIndexChanged.connect(self._recipe_defaults)

        buttons = QHBoxLayout()
        self.start_button = QPushButton("Start")
        self.start_button.clicked.connect(self.start)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("Stops after the current step; the last checkpoint is kept")
        self.stop_button.clicked.connect(self.stop)
        self.resume_button = QPushButton("Resume")
        self.resume_button.setToolTip("Continue the run in the run folder from its last checkpoint")
        self.resume_button.clicked.connect(self.resume)
        for button in (self.start_button, self.stop_button, self.resume_button):
            buttons.addWidget(button)

        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.addWidget(data)
        left_layout.addWidget(setup)
        left_layout.addLayout(buttons)
        left_layout.addStretch(1)

        self.monitor = RunMonitor()
        monitor = self.monitor  # its widgets, under the names the tab always had
        self.progress, self.progress_label, self.loss_plot = (
            monitor.progress,
            monitor.label,
            monitor.loss_plot,
        )
        self.samples, self.log = monitor.samples, monitor.log

        splitter = QSplitter(Qt.Orientation.Horizontal)
        splitter.addWidget(left)
        splitter.addWidget(self.monitor)
        splitter.setSizes([360, 700])
        layout = QVBoxLayout(self)
        layout.addWidget(splitter)

    def _restore(self) -> None:
        self.recipe.blockSignals(True)
        entries = recipe_entries()
        for name, path in entries:
            self.recipe.addItem(name, path)
        wanted = self.settings.value("train/recipe", default_recipe([name for name, _ in entries]))
        index = self.recipe.findText(str(wanted))
        self.recipe.setCurrentIndex(max(0, index))
        self.recipe.blockSignals(False)
        for key, spin in (("steps", self.steps), ("clips", self.clips)):
            if self.settings.value(f"train/{key}") is not None:
                spin.setValue(int(self.settings.value(f"train/{key}")))
        if self.settings.value("train/lr") is not None:
            self.lr.setValue(float(self.settings.value("train/lr")))
        for video in self.settings.value("train/videos", []) or []:
            self.videos.addItem(str(video))
        self.out_edit.setText(str(self.settings.value("train/out", "") or ""))

    def _remember(self) -> None:
        self.settings.setValue("train/recipe", self.recipe.currentText())
        self.settings.setValue("train/steps", self.steps.value())
        self.settings.setValue("train/clips", self.clips.value())
        self.settings.setValue("train/lr", self.lr.value())
        self.settings.setValue("train/videos", self.video_list())
        self.settings.setValue("train/out", self.out_edit.text())

    def _recipe_defaults(self) -> None:
        """Show the chosen recipe's own steps, learning rate and batch."""
        path = self.recipe.currentData()
        try:
            if path:
                import yaml

                values = yaml.safe_load(Path(path).read_text()) or {}
            else:
                values = {"optim": {"steps": 300, "lr": 1e-4}, "data": {"clips_per_batch": 2}}
        except (OSError, ValueError):
            return
        optim, data = values.get("optim") or {}, values.get("data") or {}
        if "steps" in optim:
            self.steps.setValue(int(optim["steps"]))
        if "lr" in optim:
            self.lr.setValue(float(optim["lr"]))
        if "clips_per_batch" in data:
            self.clips.setValue(int(data["clips_per_batch"]))

    def set_models(self, specs: list[ModelSpec]) -> None:
        current = self.start_model.currentData()
        scratch = self.start_model.count() > 0 and current is None  # a choice of "From scratch" stays
        self._models = [s for s in specs if s.kind == "cest"]
        self.start_model.clear()
        for spec in self._models:
            self.start_model.addItem(spec.label, spec.weights)
        self.start_model.addItem("From scratch", None)
        index = (
            self.start_model.findData(current)
            if current
            else (self.start_model.count() - 1 if scratch else -1)
        )
        self.start_model.setCurrentIndex(
            index if index >= 0 else shipped_index([s.weights for s in self._models])
        )

    def video_list(self) -> list[str]:
        return [self.videos.item(i).text() for i in range(self.videos.count())]

    def _add_videos(self) -> None:
        for f in file_dialogs.open_training_videos(self, str(Path.home())):
            self.videos.addItem(f)

    def _add_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder of clips", str(Path.home()))
        if folder:
            self.videos.addItem(folder)

    def _choose_out(self) -> None:
        folder = QFileDialog.getExistingDirectory(
            self, "Run folder", self.out_edit.text() or str(Path.home())
        )
        if folder:
            self.out_edit.setText(folder)

    # ------------------------------------------------------------------------ runs

    def request(self, resume: bool = False) -> dict:
        return {
            "base_config": self.recipe.currentData(),
            "out_dir": self.out_edit.text().strip(),
            "videos": self.video_list(),
            "init_weights": self.start_model.currentData(),
            "steps": self.steps.value(),
            "lr": self.lr.value(),
            "clips_per_batch": self.clips.value(),
            "device": self.device.currentText(),
            "resume": resume,
        }

    def start(self) -> None:
        self._launch(resume=False)

    def resume(self) -> None:
        self._launch(resume=True)

    @timed
    def _launch(self, resume: bool) -> None:
        if self.process.running():
            self.error.emit("a training run is already going: stop it first")
            return
        if not resume and not self._fresh_folder_for_start():
            return
        from engine.io.runlock import folder_problem

        problem = folder_problem(
            Path(self.out_edit.text().strip()).expanduser(), resume
        )  # `cest train`'s rule
        if problem:
            self.error.emit(problem)
            return
        request = self.request(resume)
        self._remember()
        self.start_button.setEnabled(False)
        self.resume_button.setEnabled(False)
        self.progress_label.setText("Preparing the run…")
        self.worker.submit(
            "prepare training",
            self.session.prepare_training,
            request,
            tag="train",
            on_done=lambda plan: self._run(plan, resume),
            on_error=self._prepare_failed,
        )

    def _fresh_folder_for_start(self) -> bool:
        """Start names a new run folder when none is given; on a folder that holds a run already it
        proposes a fresh one instead (Resume continues the old one) and starts nothing."""
        text = self.out_edit.text().strip()
        if not text:
            self.out_edit.setText(str(new_run_folder()))
            return True
        if not holds_run(Path(text).expanduser()):
            return True
        fresh = new_run_folder()
        self.out_edit.setText(str(fresh))
        message = (
            f"{text} already holds a run (Resume continues it). Press Start again to begin a new run "
            f"in {fresh.name}"
        )
        self.progress_label.setText(message)
        self.notice.emit(message)
        return False

    def _prepare_failed(self, message: str) -> None:
        self._set_running(False)
        self.progress_label.setText("Not started")
        self.error.emit(f"training not started: {message}")

    @timed
    def _run(self, plan: dict, resume: bool) -> None:
        self.out_dir = Path(plan["out_dir"])
        self.status, self._last_status_time = {}, None
        self.monitor.new_run()
        if not resume:
            self.loss_plot.clear()
        what = "Resuming" if resume else "Starting"
        self.log.appendPlainText(f"{what} the run in {self.out_dir}")
        try:
            self.process.start(plan["module"], plan["args"])
        except RuntimeError as exc:
            self.error.emit(str(exc))
            self._set_running(False)
            return
        self._started_at = time.perf_counter()
        self._set_running(True)
        self.progress_label.setText("Starting (loading the data)…")
        self._poll.start()

    @timed
    def stop(self) -> None:
        if self.process.running():
            self.progress_label.setText("Stopping after the current step…")
            self.process.stop()

    def running(self) -> bool:
        return self.process.running()

    def _set_running(self, running: bool) -> None:
        self.start_button.setEnabled(not running)
        self.resume_button.setEnabled(not running)
        self.stop_button.setEnabled(running)

    def _output(self, text: str) -> None:
        self.monitor.output(text)

    @timed
    def poll_status(self) -> None:
        """Read status.json and the newest sample grid of the run folder."""
        if self.out_dir is None:
            return
        try:
            status = json.loads((self.out_dir / "status.json").read_text())
        except (OSError, ValueError):
            status = None
        if status and status.get("time") != self._last_status_time:
            self._last_status_time = status.get("time")
            self.status = status
            self.monitor.show_status(status)
            self.status_changed.emit(status)
        self.monitor.show_newest_sample(self.out_dir / "samples")

    @timed
    def _finished(self, code: int, how: str) -> None:
        self.monitor.flush()
        self._poll.stop()
        self.poll_status()
        self._set_running(False)
        step = self.status.get("step", "?")
        weights = self.out_dir / "weights.safetensors" if self.out_dir else None
        if how == "done" and weights is not None and weights.exists():
            label = self.out_dir.name
            self.progress_label.setText(f"Done: step {step}. The model '{label}' is now in the model list.")
            self.model_trained.emit(str(weights), label)
        elif how == "stopped":
            kept = (
                " (its weights are selectable as a model)" if weights is not None and weights.exists() else ""
            )
            self.progress_label.setText(f"Stopped at step {step}; Resume continues from step {step}{kept}.")
            self.notice.emit(f"training stopped at step {step}")
            if weights is not None and weights.exists():
                self.model_trained.emit(str(weights), f"{self.out_dir.name} (step {step})")
        else:
            last = self.monitor.last_error_line()
            what = "crashed" if how == "crashed" else "failed"
            self.progress_label.setText(f"Training {what} (exit code {code}).")
            self.error.emit(f"training {what}: {last}" if last else f"training {what} (exit code {code})")

    def shutdown(self) -> None:
        """The window closes: the run stops after its step (its last checkpoint stays; Resume goes on)."""
        self.process.shutdown(wait_ms=5000)
