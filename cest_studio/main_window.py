"""The main window: menus, toolbar (model selector), the two tabs, the message bar and status bar.

It wires widgets to the worker threads: widget -> job or preview request -> engine -> result
signal -> widgets. It never calls the engine itself. Its parts, one idea each: the actions and
menus (menus.py, tables), the file dialogs (file_dialogs.py), the model selector
(window_models.py), the 2D and 3D views (window_preview.py), the video and its timeline
(window_video.py, state in the Qt-free video_session.py), the exports (window_export.py) and
the live camera (live_view.py).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from PySide6.QtCore import QSettings, QTimer, Signal
from PySide6.QtWidgets import (
    QApplication,
    QLabel,
    QMainWindow,
    QProgressBar,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from cest_studio import file_dialogs, menus, tasks
from cest_studio.animation_export import AnimationExport
from cest_studio.export_dialog import ExportDialog
from cest_studio.file_dialogs import is_video_path
from cest_studio.live_view import LiveController
from cest_studio.reconstruct_tab import ReconstructTab
from cest_studio.tasks import FaceResult, SecondFace
from cest_studio.train_tab import TrainTab
from cest_studio.video_session import VideoSession
from cest_studio.widgets import MessageBar, timed
from cest_studio.window_export import ExportMixin
from cest_studio.window_models import ModelsMixin
from cest_studio.window_preview import PreviewMixin
from cest_studio.window_video import VideoMixin, short_paths
from cest_studio.worker import EngineWorker, Preloader, PreviewWorker, tune_interpreter

MAX_RECENT = 10


class MainWindow(ModelsMixin, PreviewMixin, VideoMixin, ExportMixin, QMainWindow):
    """CEST Studio's window. Signals let tests (and the app) follow what happens."""

    model_loaded = Signal(object)  # tasks.ModelInfo
    face_ready = Signal(object)  # tasks.FaceResult
    preview_shown = Signal(object)  # tasks.PreviewFrame, once both the 2D view and the viewport show it
    error_shown = Signal(str)
    video_finished = Signal(dict)
    exported = Signal(list)
    second_face_ready = Signal(object)

    def __init__(
        self,
        settings: QSettings | None = None,
        model: str | None = None,
        device: str = "cpu",
        detector: str = "auto",
        threads: int | None = None,
    ):
        from cest_studio.viewport import install_gl_format

        install_gl_format()
        tune_interpreter()
        super().__init__()
        self.settings = settings or QSettings()
        self.setWindowTitle("CEST Studio")
        self.resize(1280, 800)
        self.setAcceptDrops(True)
        self.worker = EngineWorker(self)
        self.preview = PreviewWorker(parent=self)
        self.preloader = Preloader(self)
        self.session = tasks.EngineSession(device=device, detector=detector, threads=threads)
        self.face: FaceResult | None = None
        self.second: SecondFace | None = None
        self.source: str | None = None
        self.model_info = None
        self._model_override = model
        self._pending_frame = None
        self._topology = None
        self._video: VideoSession | None = None
        self._video_dirs: list[str] = []
        self._apply_second_light = False
        self._reset_view_next = True
        self._shut_down = False
        self._vtk_loaded = False
        self.latencies: list[float] = []  # slider request -> frame shown, ms
        self.show_times: list[float] = []  # GUI-thread time to show a frame (2D view + viewport), ms
        self.slow_ops: list[tuple[str, float, float]] = []

        self.tab = ReconstructTab()
        self.train_tab = TrainTab(self.worker, self.session, self.settings)
        self.tabs = QTabWidget()
        self.tabs.addTab(self.tab, "Reconstruct")
        self.tabs.addTab(self.train_tab, "Train")
        self.message = MessageBar()
        central = QWidget()
        layout = QVBoxLayout(central)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.message)
        layout.addWidget(self.tabs, 1)
        self.setCentralWidget(central)
        self.busy_label = QLabel("")
        self.busy_bar = QProgressBar()
        self.busy_bar.setMaximumWidth(160)
        self.busy_bar.setRange(0, 0)
        self.busy_bar.hide()
        self.statusBar().addPermanentWidget(self.busy_label)
        self.statusBar().addPermanentWidget(self.busy_bar)

        self.animation = AnimationExport(self)
        menus.build_actions(self)
        self.recent_menu = menus.build_menus(self)
        self.model_combo = menus.build_toolbar(self)
        self.live = LiveController(self)  # File > Live camera or stream… (cest_studio/live_view.py)
        self._connect()
        self._restore()
        app = QApplication.instance()
        if app is not None:
            app.aboutToQuit.connect(self.shutdown)
        self.statusBar().showMessage("Loading the engine…")
        self.preloader.load("pyvistaqt")
        self.load_model(self.model_combo.currentData() or "fit", reopen=False)
        self.worker.submit("load the face detector", self.session.warm_up, tag="model")

    def _connect(self) -> None:
        self.worker.busy_changed.connect(self._busy)
        self.preview.frame_ready.connect(self._frame_ready)
        self.preview.failed.connect(self.show_error)
        self.preloader.loaded.connect(self._preloaded)
        controls = self.tab.controls
        controls.state_changed.connect(self.request_preview)
        controls.load_second_requested.connect(self.open_second_dialog)
        controls.light_from_second_requested.connect(self._light_from_second)
        self.tab.timeline.frame_changed.connect(self.show_frame)
        self.tab.timeline.cancel_requested.connect(self.cancel_video)
        self.tab.viewport.ready.connect(self._viewport_ready)
        self.model_combo.activated.connect(self._model_chosen)
        self.train_tab.model_trained.connect(self.add_trained_model)
        self.train_tab.error.connect(self.show_error)
        self.train_tab.notice.connect(lambda text: self.statusBar().showMessage(text, 8000))

    def _restore(self) -> None:
        geometry = self.settings.value("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        state = self.settings.value("window/state")
        if state is not None:
            self.restoreState(state)
        override = self._model_override
        if override and override.startswith("cest:") and override[5:] not in self.trained_models():
            self.settings.setValue("models/trained", [*self.trained_models(), override[5:]])  # --model FILE
        self.refresh_models(override or self.settings.value("model/current"))
        self._rebuild_recent()

    # ------------------------------------------------------------------------ opening

    def _last_folder(self) -> str:
        return str(self.settings.value("files/last_folder", str(Path.home())))

    def open_dialog(self) -> None:
        path = file_dialogs.open_media(self, self._last_folder())
        if path:
            self.open_path(path)

    def open_path(self, path: str | Path, remember: bool = True) -> None:
        """Open a photo or a video: reconstruct it on the engine thread."""
        path = str(Path(path).expanduser().absolute())
        self._reset_view_next = True
        self.message.hide()
        self.live.stop()
        self.worker.cancel("face")
        self.worker.cancel("frame")
        self._stop_video_process()
        self.tab.timeline.stop()
        if is_video_path(path):
            self.open_video(path, remember)
            return
        self.statusBar().showMessage(f"Reconstructing {Path(path).name}…")
        self.worker.submit(
            f"reconstruct {Path(path).name}",
            self.session.reconstruct_image,
            path,
            tag="face",
            on_done=lambda face: self._face_done(face, path, remember),
            on_error=lambda message: self._open_failed(message, path),
        )

    def _open_failed(self, message: str, path: str) -> None:
        """One line; where an earlier face stays on screen, it says which (files that fail stay out of Recent)."""
        shown = (
            f" — still showing {Path(self.face.source).name}, the last face reconstructed"
            if self.face
            else ""
        )
        self.show_error(short_paths(message, path) + shown)

    @timed
    def _face_done(self, face: FaceResult, path: str, remember: bool = True) -> None:
        self.source = path
        if remember:
            self._remember_file(path)
        self._video = None
        self.tab.timeline.set_active(False)
        self.statusBar().showMessage(
            f"{Path(path).name}: reconstructed by {self._method_name(face.method)} in {face.seconds:.2f} s",
            8000,
        )
        self.set_face(face, keep_edits=False)

    def _method_name(self, method: str) -> str:
        return "the CEST networks" if method == "cest" else "the landmark fit"

    @timed
    def set_face(self, face: FaceResult, keep_edits: bool) -> None:
        """Show a face: the input and landmarks now, the renders as soon as the preview thread has them."""
        self.face = face
        caption = (
            f"{face.image.shape[1]}×{face.image.shape[0]}"
            if face.frame is None
            else f"frame {face.frame + 1}"
        )
        self.tab.input_view.set_image(face.image, face.landmarks, caption)
        self.tab.controls.set_face(face.light, face.pose, keep_edits, face.expression, face.expression_names)
        yaw, pitch = (int(round(a)) for a in (face.pose[1], face.pose[0]))
        self.tab.info.setText(
            f"{Path(face.source).name if face.frame is None else face.source} · "
            f"{self._method_name(face.method)} · estimated yaw {yaw}°, pitch {pitch}°"
        )
        self.export_action.setEnabled(True)
        self.screenshot_action.setEnabled(True)
        self.face_ready.emit(face)
        self.request_preview()

    def _remember_file(self, path: str) -> None:
        self.settings.setValue("files/last_folder", str(Path(path).parent))
        recent = [p for p in self.recent_files() if p != path]
        recent.insert(0, path)
        self.settings.setValue("files/recent", recent[:MAX_RECENT])
        self._rebuild_recent()

    def recent_files(self) -> list[str]:
        value = self.settings.value("files/recent", []) or []
        return [str(v) for v in (value if isinstance(value, list) else [value])]

    def _rebuild_recent(self) -> None:
        self.recent_menu.clear()
        recent = self.recent_files()
        for path in recent:
            action = self.recent_menu.addAction(Path(path).name)
            action.setToolTip(path)
            action.triggered.connect(lambda _checked=False, p=path: self.open_path(p))
        self.recent_menu.setEnabled(bool(recent))

    # ------------------------------------------------------------------------ second face

    def open_second_dialog(self) -> None:
        path = file_dialogs.open_second_face(self, self._last_folder())
        if path:
            self.open_second(path)

    def _light_from_second(self) -> None:
        if self.second is not None:
            self.tab.controls.use_second_light()
        else:
            self._apply_second_light = True
            self.open_second_dialog()

    def open_second(self, path: str, use_light: bool = False) -> None:
        self._apply_second_light = self._apply_second_light or use_light
        self.statusBar().showMessage(f"Reconstructing the second face {Path(path).name}…")
        self.worker.submit(
            f"reconstruct {Path(path).name}",
            self.session.second_face,
            path,
            tag="second",
            on_done=self._second_done,
            on_error=self._second_failed,
        )

    def _second_failed(self, message: str) -> None:
        self._apply_second_light = False
        self.show_error(f"second face: {message}")

    def _second_done(self, second: SecondFace) -> None:
        self.second = second
        self.tab.controls.set_second_face(second.crop, second.light, second.source, second.expression)
        self.statusBar().showMessage(
            f"Second face: {Path(second.source).name}. Blend or swap its reflectance, or use its light.", 8000
        )
        if self._apply_second_light:
            self._apply_second_light = False
            self.tab.controls.use_second_light()
        else:
            self.request_preview()
        self.second_face_ready.emit(second)

    def showEvent(self, event) -> None:  # noqa: N802
        super().showEvent(event)
        QTimer.singleShot(0, self._create_viewport)

    # ------------------------------------------------------------------------ messages

    def show_error(self, message: str) -> None:
        """Every error the user can meet arrives here: a line in the window, never a traceback."""
        self.message.show_message(message, "error")
        self.statusBar().showMessage(message, 15000)
        self.error_shown.emit(message)

    def _busy(self, name: str) -> None:
        self.busy_label.setText(name)
        self.busy_bar.setVisible(bool(name))

    def about(self) -> None:
        self.message.show_message(
            "CEST Studio: 3D faces from photos and videos by conditional estimation (Wen et al., ICCV 2021). "
            "Drag to rotate the 3D view, scroll to zoom, R to reset.",
            "info",
        )

    # ------------------------------------------------------------------------ drag and drop, closing

    def dragEnterEvent(self, event) -> None:  # noqa: N802
        if event.mimeData().hasUrls() and any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802
        files = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if files:
            event.acceptProposedAction()
            self.open_path(files[0])

    def closeEvent(self, event) -> None:  # noqa: N802
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState())
        self.settings.sync()
        self.shutdown()
        super().closeEvent(event)

    def shutdown(self) -> None:
        """Stop the child processes and the threads (waits for a running job's current step)."""
        if self._shut_down:
            return
        self._shut_down = True
        self.train_tab.shutdown()
        if self._video:
            self._video.process.shutdown()
        self.worker.shutdown(wait_ms=60_000)  # a running job stops at its next frame; an import finishes
        self.preview.shutdown()
        self.preloader.shutdown(wait_ms=60_000)
        self.tab.viewport.close_plotter()
        for folder in self._video_dirs:
            shutil.rmtree(folder, ignore_errors=True)

    # ------------------------------------------------------------------------ for tests and screenshots

    def grab_window(self):
        """The window as a QImage, the 3D view included (grabbed from VTK's buffer)."""
        image = self.grab().toImage()
        viewport = self.tab.viewport
        if viewport.plotter is not None and viewport.isVisible():
            view = viewport.qimage()
            if view is not None:
                from PySide6.QtGui import QPainter

                origin = viewport.mapTo(self, viewport.rect().topLeft())
                painter = QPainter(image)
                ratio = image.devicePixelRatio() or 1
                painter.drawImage(
                    origin, view.scaled(int(viewport.width() * ratio), int(viewport.height() * ratio))
                )
                painter.end()
        return image


__all__ = ["MainWindow", "ExportDialog"]
