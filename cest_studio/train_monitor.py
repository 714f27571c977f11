"""The Train tab's view of a running training: progress, loss curves, the newest sample grid and
the child process's output. Widgets only: the tab reads the run folder and feeds them."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QLabel, QPlainTextEdit, QProgressBar, QSplitter, QVBoxLayout, QWidget

from cest_studio.train_setup import sample_preview
from cest_studio.widgets import ImageView, LossPlot, qimage_to_array, timed


class RunMonitor(QSplitter):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(Qt.Orientation.Vertical, parent)
        self.progress = QProgressBar()
        self.progress.setFormat("step %v / %m")
        self.label = QLabel("No run yet")
        self.loss_plot = LossPlot()
        self.samples = ImageView(
            "Latest samples",
            "Sample reconstructions appear here: input | re-render | "
            "swapped reflectance | albedo | shading | normals",
        )
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setMaximumBlockCount(2000)
        self.log.setPlaceholderText("The training process's output")
        top = QWidget()
        top_layout = QVBoxLayout(top)
        top_layout.setContentsMargins(0, 0, 0, 0)
        top_layout.addWidget(self.progress)
        top_layout.addWidget(self.label)
        top_layout.addWidget(self.loss_plot, 1)
        self.addWidget(top)
        self.addWidget(self.samples)
        self.addWidget(self.log)
        self.setSizes([220, 380, 90])
        self._log_buffer = ""
        self._last_sample: str | None = None

    def new_run(self) -> None:
        self._last_sample = None

    @timed
    def output(self, text: str) -> None:
        """The child's output, a line at a time; of a progress bar's carriage-return updates only the
        last one of each chunk is kept."""
        self._log_buffer += text
        *lines, self._log_buffer = self._log_buffer.split("\n")
        for line in lines:
            line = line.rstrip("\r").rsplit("\r", 1)[-1]
            if line.strip():
                self.log.appendPlainText(line)

    def flush(self) -> None:
        """The run ended: its last, unterminated line too."""
        if self._log_buffer.strip():
            self.output("\n")

    def last_error_line(self) -> str:
        return _last_error_line(self.log.toPlainText())

    def show_newest_sample(self, folder: Path) -> None:
        """The newest sample grid (step_NNNNNNN.png) of ``folder``, when it is new."""
        samples = sorted(folder.glob("*.png")) if folder.is_dir() else []
        if samples and str(samples[-1]) != self._last_sample:
            image = QImage(str(samples[-1]))
            if not image.isNull():
                self._last_sample = str(samples[-1])
                step = samples[-1].stem.removeprefix("step_").lstrip("0") or "0"
                self.samples.set_image(qimage_to_array(sample_preview(image)), caption=f"step {step}")

    def show_status(self, status: dict) -> None:
        """The run's status.json: the progress bar, the loss curves and one line of figures."""
        step, steps = int(status.get("step") or 0), int(status.get("steps") or 0)
        self.progress.setRange(0, max(1, steps))
        self.progress.setValue(step)
        losses = status.get("losses") or {}
        if losses:
            self.loss_plot.add(step, {k: float(v) for k, v in losses.items() if isinstance(v, (int, float))})
        eta = status.get("eta_s")
        parts = [f"{status.get('state', '')}: step {step} / {steps}"]
        if "total" in losses:
            parts.append(f"loss {losses['total']:.4g}")
        if status.get("images_per_s"):
            parts.append(f"{status['images_per_s']} images/s")
        if eta is not None and status.get("state") == "running":
            parts.append(f"{_duration(eta)} left")
        self.label.setText(" · ".join(parts))


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def _last_error_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in reversed(lines):
        if line.lower().startswith("error") or "Error" in line:
            return line[:300]
    return lines[-1][:300] if lines else ""
