"""The main window: menus, toolbar (model selector), the two tabs, the message bar and status bar.

It wires widgets to the worker threads: widget -> job or preview request -> engine -> result
signal -> widgets. It never calls the engine itself.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from pathlib import Path

from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QFileDialog,
    QLabel,
    QMainWindow,
    QProgressBar,
    QTabWidget,
    QToolBar,
    QVBoxLayout,
    QWidget,
)

from cest_studio import tasks
from cest_studio.animation_export import AnimationExport
from cest_studio.export_dialog import ExportDialog, export_folder
from cest_studio.live_view import LiveController
from cest_studio.reconstruct_tab import ReconstructTab
from cest_studio.tasks import FaceResult, ModelSpec, SecondFace
from cest_studio.train_tab import TrainTab
from cest_studio.video_job import frame_path
from cest_studio.widgets import MessageBar, timed
from cest_studio.worker import (
    EngineWorker,
    Preloader,
    PreviewWorker,
    VideoProcess,
    freeze_heap,
    tune_interpreter,
)

log = logging.getLogger("cest_studio")

IMAGE_FILTER = "Images (*.png *.jpg *.jpeg *.bmp *.tif *.tiff *.webp *.gif)"
VIDEO_FILTER = "Videos (*.mp4 *.mov *.avi *.mkv *.webm *.m4v *.mpg *.mpeg)"
MAX_RECENT = 10


def is_video_path(path: str | Path) -> bool:
    from engine.io.formats import VIDEO_SUFFIXES  # the engine's one list (constants: no engine load)

    return Path(path).suffix.lower() in VIDEO_SUFFIXES


def short_paths(message: str, path: str) -> str:
    """The engine's messages name the whole path (twice, at times): the file's name is enough here."""
    name = Path(path).name
    text = message.replace(f"'{path}'", f"'{name}'").replace(str(path), name)
    return text


class MainWindow(QMainWindow):
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
        self._video: dict | None = None
        self._video_frames: dict[int, str] = {}  # frame index -> its saved reconstruction (.npz)
        self._frame_cache: dict[int, FaceResult] = {}
        self._frame_wanted: int | None = None
        self._frame_loading = False
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

        self._build_actions()
        self._build_menus_and_toolbar()
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

    # ------------------------------------------------------------------------ building

    def _action(self, text: str, slot, shortcut=None, tip: str = "") -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        if tip:
            action.setStatusTip(tip)
        action.triggered.connect(slot)
        self.addAction(action)
        return action

    def _build_actions(self) -> None:
        self.open_action = self._action(
            "&Open…", self.open_dialog, QKeySequence.StandardKey.Open, "Open a photo or a video"
        )
        self.open_second_action = self._action(
            "Open &second face…",
            self.open_second_dialog,
            "Ctrl+Shift+O",
            "A second photo whose reflectance or light can be borrowed",
        )
        self.export_action = self._action(
            "&Export…", self.export_dialog, "Ctrl+E", "Export meshes (OBJ, PLY, GLB), maps and a screenshot"
        )
        self.animation = AnimationExport(self)
        self.export_animation_action = self._action(
            "Export &animation…",
            self.animation.dialog,
            "Ctrl+Shift+E",
            "A reconstructed video as an animated, textured head (animation.glb) and ARKit curves (blendshapes.csv)",
        )
        self.screenshot_action = self._action(
            "Save 3D view &screenshot…", self.screenshot_dialog, "Ctrl+Shift+S"
        )
        self.quit_action = self._action("&Quit", self.close, QKeySequence.StandardKey.Quit)
        self.quit_action.setShortcut(QKeySequence("Ctrl+Q"))
        self.reset_view_action = self._action("&Reset view", self.reset_view, "R", "Reset the 3D view")
        self.reset_pose_action = self._action(
            "Reset &pose", lambda: self.tab.controls.reset_pose(), "Shift+R"
        )
        self.cancel_action = self._action("&Cancel video reconstruction", self.cancel_video, "Esc")
        self.export_action.setEnabled(False)
        self.screenshot_action.setEnabled(False)

    def _build_menus_and_toolbar(self) -> None:
        menu = self.menuBar().addMenu("&File")
        menu.addAction(self.open_action)
        self.recent_menu = menu.addMenu("Open &recent")
        menu.addAction(self.open_second_action)
        menu.addSeparator()
        menu.addAction(self.export_action)
        menu.addAction(self.export_animation_action)
        menu.addAction(self.screenshot_action)
        menu.addSeparator()
        menu.addAction(self.quit_action)
        view = self.menuBar().addMenu("&View")
        view.addAction(self.reset_view_action)
        view.addAction(self.reset_pose_action)
        view.addAction(self.cancel_action)
        model_menu = self.menuBar().addMenu("&Model")
        model_menu.addAction(self._action("Add a model file…", self.add_model_dialog))
        help_menu = self.menuBar().addMenu("&Help")
        help_menu.addAction(self._action("About CEST Studio", self.about))

        toolbar = QToolBar("Main")
        toolbar.setObjectName("main-toolbar")
        toolbar.setMovable(False)
        toolbar.addAction(self.open_action)
        toolbar.addAction(self.export_action)
        toolbar.addAction(self.reset_view_action)
        toolbar.addSeparator()
        toolbar.addWidget(QLabel(" Model: "))
        self.model_combo = QComboBox()
        self.model_combo.setMinimumWidth(240)
        self.model_combo.setToolTip("Which model reconstructs the faces; switching re-runs the current face")
        toolbar.addWidget(self.model_combo)
        self.addToolBar(toolbar)

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

    # ------------------------------------------------------------------------ models

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
        path, _ = QFileDialog.getOpenFileName(
            self, "CEST weights", self._last_folder(), "CEST weights (*.safetensors)"
        )
        if path:
            self.add_trained_model(path, Path(path).name)
            index = self.model_combo.findData(f"cest:{path}")
            if index >= 0:
                self.model_combo.setCurrentIndex(index)
                self._model_chosen(index)

    # ------------------------------------------------------------------------ opening

    def _last_folder(self) -> str:
        return str(self.settings.value("files/last_folder", str(Path.home())))

    def open_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self,
            "Open a photo or a video",
            self._last_folder(),
            f"Photos and videos ({IMAGE_FILTER[8:-1]} {VIDEO_FILTER[8:-1]});;{IMAGE_FILTER};;{VIDEO_FILTER};;"
            "All files (*)",
        )
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
        self._video, self._video_frames = None, {}
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
        path, _ = QFileDialog.getOpenFileName(
            self,
            "Second face (its reflectance or light)",
            self._last_folder(),
            f"{IMAGE_FILTER};;All files (*)",
        )
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

    # ------------------------------------------------------------------------ preview

    def request_preview(self, _state=None) -> None:
        if self.face is not None:
            self.preview.request(self.face, self.second, self.tab.controls.state())

    @timed
    def _frame_ready(self, frame) -> None:
        """Keep only the newest frame; show it when the event loop is free (drops stale ones)."""
        scheduled = self._pending_frame is not None
        if (
            self._pending_frame is not None
            and self._pending_frame.new_face
            and not frame.new_face
            and self._pending_frame.face_key == frame.face_key
        ):
            frame.new_face, frame.faces, frame.uvs = True, self._pending_frame.faces, self._pending_frame.uvs
        if self._pending_frame is not None and self._pending_frame.pose_changed:
            frame.pose_changed = True
        self._pending_frame = frame
        if not scheduled:
            QTimer.singleShot(0, self._show_frame)

    @timed
    def _show_frame(self) -> None:
        frame, self._pending_frame = self._pending_frame, None
        if frame is None or self.face is None or frame.face_key != self.face.key:
            return
        start = time.perf_counter()
        self.tab.render_view.set_image(frame.image, caption=f"{frame.state.view}")
        if frame.new_face:
            self._topology = (frame.faces, frame.uvs)
        viewport = self.tab.viewport
        if viewport.is_ready and self._topology is not None:
            if frame.new_face or not viewport.has_mesh:
                viewport.show_face(
                    frame.vertices, *self._topology, frame.texture, reset=self._reset_view_next
                )
                self._reset_view_next = False
            else:
                viewport.update_face(frame.texture, frame.vertices if frame.pose_changed else None)
        self._last_frame = frame
        self.show_times.append((time.perf_counter() - start) * 1000)
        del self.show_times[:-500]
        self.latencies.append((time.perf_counter() - frame.requested_at) * 1000)
        del self.latencies[:-500]
        self.preview_shown.emit(frame)

    def preview_settled(self) -> bool:
        """Whether the window shows the current face with the controls' current state."""
        last = getattr(self, "_last_frame", None)
        return (
            self.face is not None
            and last is not None
            and self._pending_frame is None
            and last.face_key == self.face.key
            and last.state == self.tab.controls.state()
        )

    @timed
    def _preloaded(self, module: str, error: str) -> None:
        if module != "pyvistaqt":
            return
        viewport = self.tab.viewport
        if error:
            viewport.error = f"3D view unavailable ({error})"
            self.statusBar().showMessage(viewport.error, 10000)
            return
        self._vtk_loaded = True
        self._create_viewport()

    def _create_viewport(self) -> None:
        """Build the 3D view once VTK is imported and the window is on screen (an OpenGL widget that
        never showed cannot be torn down cleanly)."""
        viewport = self.tab.viewport
        if not self._vtk_loaded or viewport.plotter is not None or not self.isVisible():
            return
        if viewport.create():
            viewport.plotter.setAcceptDrops(False)  # drops go to the window, not to pyvista's loader
        else:
            self.statusBar().showMessage(viewport.error or "3D view unavailable", 10000)

    def showEvent(self, event) -> None:  # noqa: N802
        super().showEvent(event)
        QTimer.singleShot(0, self._create_viewport)

    @timed
    def _viewport_ready(self) -> None:
        freeze_heap()  # VTK and pyvista are imported now
        last = getattr(self, "_last_frame", None)
        if (
            last is not None
            and self._topology is not None
            and self.face is not None
            and last.face_key == self.face.key
        ):
            self.tab.viewport.show_face(last.vertices, *self._topology, last.texture)

    def reset_view(self) -> None:
        self.tab.viewport.reset_view()

    # ------------------------------------------------------------------------ video

    def open_video(self, path: str, remember: bool = True) -> None:
        """Reconstruct every frame in a child process; show the first face as soon as it is ready."""
        self._stop_video_process()
        folder = tempfile.mkdtemp(prefix="cest-video-")
        self._video_dirs.append(folder)
        spec = (
            self.model_info.spec
            if self.model_info
            else ModelSpec.from_key(self.model_combo.currentData() or "fit")
        )
        process = VideoProcess(self)
        video = {
            "path": path,
            "frames": 0,
            "fps": 25.0,
            "done": False,
            "out_dir": folder,
            "shown": False,
            "process": process,
            "ended": False,
            "remember": remember,
        }
        self._video, self._video_frames, self._frame_cache = video, {}, {}
        self._frame_wanted, self._frame_loading = None, False
        process.message.connect(lambda message: self._video_message(video, message))
        process.output.connect(lambda text: log.debug("video job: %s", text.rstrip()))
        process.finished.connect(lambda code, how: self._video_process_finished(video, code, how))
        args = [
            path,
            folder,
            "--method",
            spec.kind,
            "--device",
            self.session.device,
            "--detector",
            self.session.detector,
        ]
        if spec.weights:
            args += ["--weights", spec.weights]
        if self.session.threads:
            args += ["--threads", str(self.session.threads)]
        self.tab.timeline.start(0, 25.0)
        self.tab.timeline.frame_label.setText("starting…")
        self.statusBar().showMessage(f"Reconstructing every frame of {Path(path).name} in the background…")
        process.start("cest_studio.video_job", args)

    def _stop_video_process(self) -> None:
        if self._video and self._video["process"].running():
            self._video["process"].stop(grace_ms=4000)

    @timed
    def _video_message(self, video: dict, message: dict) -> None:
        if video is not self._video:
            return
        if "info" in message:
            info = message["info"]
            video.update(
                frames=int(info.get("frames") or 0),
                fps=float(info.get("fps") or 25.0),
                size=(int(info.get("width") or 0), int(info.get("height") or 0)),
            )
            self.source = video["path"]
            self.tab.timeline.start(video["frames"], video["fps"])
            if video["remember"]:
                self._remember_file(video["path"])
        elif "frame" in message:
            index = int(message["frame"])
            self._video_frames[index] = str(frame_path(video["out_dir"], index))
            if not video["shown"]:
                video["shown"] = True
                self.tab.timeline.set_frame(index)
                self._request_frame(index)
        elif "progress" in message:
            done, total = message["progress"]
            self.tab.timeline.set_progress(int(done), int(total or 0))
        elif "done" in message:
            video["ended"] = True
            self._video_done(video, message["done"])
        elif "error" in message:
            video["ended"] = True
            self._video_ended(video)
            self.show_error(short_paths(str(message["error"]), video["path"]))

    def _video_process_finished(self, video: dict, code: int, how: str) -> None:
        if video is not self._video or video["ended"]:
            return
        video["ended"] = True
        self._video_ended(video)
        if how == "stopped":
            self.statusBar().showMessage("Video reconstruction stopped", 8000)
        else:
            self.show_error(
                f"the video reconstruction {how} (exit code {code}); "
                f"{len(self._video_frames)} frames were kept"
            )

    def _video_ended(self, video: dict) -> None:
        """The timeline keeps the frames made; with none it is the greyed bar of "no video"."""
        if self._video_frames:
            self.tab.timeline.finish(len(self._video_frames))
        else:
            self.tab.timeline.set_active(False)

    @timed
    def _video_done(self, video: dict, summary: dict) -> None:
        video["done"] = True
        video["summary"] = summary
        self.tab.timeline.finish(summary.get("frames", 0))
        state = "cancelled after" if summary.get("interrupted") else "done:"
        self.statusBar().showMessage(
            f"Video {state} {summary.get('frames', 0)} frames, {summary.get('faces', 0)} with a face "
            f"({summary.get('fps', 0):.2f} frames/s reconstructed)",
            10000,
        )
        if not self._video_frames:
            self.show_error(f"{Path(video['path']).name}: no face found in any frame")
        elif summary.get("damaged"):
            self.message.show_message(
                f"{Path(video['path']).name} is damaged: {summary['damaged']}; "
                f"{summary.get('frames', 0)} frames kept",
                "warning",
            )
        self.video_finished.emit(summary)

    def cancel_video(self) -> None:
        if self._video and self._video["process"].running():
            self._video["process"].stop(grace_ms=15000)
            self.statusBar().showMessage("Cancelling the video reconstruction after this frame…")

    @timed
    def show_frame(self, index: int) -> None:
        """Scrub: show the reconstruction of frame ``index`` (or the nearest earlier one with a face)."""
        if not self._video_frames:
            return
        if index not in self._video_frames:
            earlier = [i for i in self._video_frames if i <= index]
            if not earlier:
                self.tab.info.setText(f"frame {index + 1}: not reconstructed yet")
                return
            self.tab.info.setText(f"frame {index + 1}: no face; showing frame {max(earlier) + 1}")
            index = max(earlier)
        if (
            self.face is not None
            and self.face.frame == index
            and self.source == (self._video or {}).get("path")
        ):
            return
        self._request_frame(index)

    def _request_frame(self, index: int) -> None:
        """Load a reconstructed frame on the engine thread; while one loads, only the newest wish waits."""
        self._frame_wanted = index
        if not self._frame_loading:
            self._load_wanted_frame()

    def _load_wanted_frame(self) -> None:
        index, self._frame_wanted = self._frame_wanted, None
        video = self._video
        if index is None or video is None:
            return
        if index in self._frame_cache:
            self._frame_loaded(video, self._frame_cache[index])
            return
        self._frame_loading = True
        self.worker.submit(
            f"load frame {index + 1}",
            self.session.load_frame,
            self._video_frames[index],
            tag="frame",
            on_done=lambda face: self._frame_loaded(video, face),
            on_error=lambda message: self._frame_failed(video, message),
        )

    def _frame_loaded(self, video: dict, face: FaceResult) -> None:
        self._frame_loading = False
        if video is self._video:
            self._frame_cache[face.frame] = face
            while len(self._frame_cache) > 64:
                self._frame_cache.pop(next(iter(self._frame_cache)))
            first = self.face is None or self.face.frame is None
            self.set_face(face, keep_edits=not first)
        self._load_wanted_frame()

    def _frame_failed(self, video: dict, message: str) -> None:
        self._frame_loading = False
        if video is self._video:
            self.show_error(f"cannot show that frame: {message}")
        self._load_wanted_frame()

    # ------------------------------------------------------------------------ export

    def export_dialog(self) -> ExportDialog | None:
        if self.face is None:
            self.show_error("nothing to export yet: open a photo or a video first")
            return None
        folder = export_folder(self.settings.value("export/last_folder"), self.source)
        dialog = ExportDialog(str(folder), video=bool(self._video_frames), parent=self)
        dialog.accepted.connect(lambda: self.export_to(dialog.options()))
        dialog.open()
        return dialog

    def export_to(self, options: dict) -> None:
        """Export what the dialog asked for (the dialog's OK lands here; tests call it too)."""
        if self.face is None:
            self.show_error("nothing to export yet")
            return
        folder = options.get("folder")
        if not folder:
            self.show_error("choose a folder to export into")
            return
        try:
            Path(folder).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self.show_error(f"cannot create the folder {folder}: {exc.strerror or exc}")
            return
        written: list[str] = []
        if options.get("screenshot"):
            path = Path(folder) / f"{options.get('name') or 'face'}_3d_view.png"
            if self.save_screenshot(str(path)):
                written.append(str(path))
        state, second = self.tab.controls.state(), self.second
        sequence = options.get("sequence") and self._video_frames
        total = {"files": written}

        def after_face(paths):
            total["files"] += paths
            if sequence:
                frames = [self._video_frames[i] for i in sorted(self._video_frames)]
                self.worker.submit(
                    "export the sequence",
                    self.session.export_sequence,
                    frames,
                    state,
                    second,
                    str(Path(folder) / "sequence"),
                    self._video.get("fps", 25.0) if self._video else 25.0,
                    options.get("sequence_format"),
                    tag="export",
                    on_progress=self._export_progress,
                    on_done=lambda p: finish(p),
                    on_error=self._export_failed,
                )
            else:
                finish([])

        def finish(paths):
            total["files"] += paths
            self.busy_label.setText("")
            self.settings.setValue("export/last_folder", str(Path(folder).resolve()))
            self.statusBar().showMessage(f"Exported {len(total['files'])} files to {folder}", 10000)
            self.exported.emit(total["files"])

        self.statusBar().showMessage(f"Exporting to {folder}…")
        self.worker.submit(
            "export",
            self.session.export_face,
            self.face,
            state,
            second,
            folder,
            options,
            tag="export",
            on_done=after_face,
            on_error=self._export_failed,
        )

    def _export_progress(self, done: int, total: int) -> None:
        self.busy_label.setText(f"exporting {done}/{total}")

    def _export_failed(self, message: str) -> None:
        self.busy_label.setText("")
        self.show_error(f"export failed: {message}")

    def screenshot_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Save the 3D view", str(Path(self._last_folder()) / "view.png"), "PNG (*.png)"
        )
        if path:
            if self.save_screenshot(path):
                self.statusBar().showMessage(f"Saved {path}", 6000)

    def save_screenshot(self, path: str) -> bool:
        image = self.tab.viewport.qimage()
        if image is None:
            self.show_error("the 3D view is not available for a screenshot")
            return False
        tmp = Path(path).with_name(f".{Path(path).name}.tmp.png")
        if not image.save(str(tmp), "PNG"):
            tmp.unlink(missing_ok=True)
            self.show_error(f"cannot write {path}")
            return False
        tmp.replace(path)
        return True

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
            self._video["process"].shutdown()
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
