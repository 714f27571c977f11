"""The live camera in the Reconstruct tab: a camera, a stream URL or a video file played as a live
source; the reconstruction follows the face with every control working, and can be recorded to
animation.glb + blendshapes.csv (the writers of ``cest reconstruct --animation``).

The engine thread runs the live session (engine.reconstruct.live.LiveSession) as one long job. It
hands the newest frame over through a one-frame slot: a frame the window had no time to show is
replaced, never queued, so the window shows the newest face and stays responsive however slow the
machine. The source itself drops the frames the engine had no time for.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QFileDialog, QInputDialog

LIVE_TAG = "live"


class FrameSlot:
    """The newest value from the engine thread; ``put`` says whether the GUI must be told (the slot
    was empty), so at most one notification is ever in the event queue."""

    def __init__(self):
        self._lock = threading.Lock()
        self._value = None
        self.put_count = self.replaced = 0

    def put(self, value) -> bool:
        with self._lock:
            empty = self._value is None
            self.replaced += not empty
            self.put_count += 1
            self._value = value
            return empty

    def take(self):
        with self._lock:
            value, self._value = self._value, None
            return value


class LiveControl:
    """What the GUI asks of a running live job (thread-safe enough: one assignment each)."""

    def __init__(self):
        self.session = None  # engine.reconstruct.live.LiveSession once the job has started
        self.record_folder: str | None = None

    def record(self, folder: str | None) -> None:
        self.record_folder = folder
        if self.session is not None:
            self.session.record(folder)


def run_live(ctx, engine_session, spec: str, control: LiveControl, slot: FrameSlot) -> dict:
    """The live job, on the engine thread: until the source ends or the job is cancelled."""
    from engine.reconstruct.live import LiveSession, LiveSource

    reconstructor = engine_session._require()
    source = LiveSource.open(spec)  # OSError (a clear line) when a camera or URL will not open
    session = LiveSession(reconstructor, source=spec)
    control.session = session
    if control.record_folder:
        session.record(control.record_folder)

    def on_frame(index, seconds, frame, recon) -> None:
        if recon is None:
            return  # no face: the last one stays on screen
        started = time.perf_counter()
        face = engine_session._face_result(recon, 0.0)
        face.source = f"live {_short(spec)}"
        face.seconds = time.perf_counter() - started
        if slot.put(face):
            ctx.partial(None)  # "the slot has a face": the GUI takes the newest

    with source:
        stats = session.run(source, on_frame, stop=ctx.stopped)
    stats["spec"] = spec
    return stats


class LiveController(QObject):
    """Owns the live actions and their logic; the window gives it its worker, session and views."""

    started = Signal(str)
    face_shown = Signal(object)  # tasks.FaceResult
    finished = Signal(dict)  # the session's figures (frames, fps, dropped, recorded paths)

    def __init__(self, window):
        super().__init__(window)
        self.window = window
        self.control: LiveControl | None = None
        self.slot = FrameSlot()
        self.shown = 0
        self.last_stats: dict | None = None
        self._started_at = 0.0
        self._rate = (0.0, 0)  # (when, frames shown then): the status bar's rate
        # the actions and their place in File come from the window's tables (cest_studio/menus.py)
        self.live_action = window.live_action
        self.record_action = window.record_live_action
        self.stop_action = window.stop_live_action

    @property
    def active(self) -> bool:
        return self.control is not None

    # ------------------------------------------------------------------ start / stop

    def dialog(self) -> None:
        spec, ok = QInputDialog.getText(
            self.window,
            "Live camera or stream",
            "Camera number (0 is the first), stream URL (rtsp://, http://…) or a video file:",
            text=str(self.window.settings.value("live/last", "0")),
        )
        if ok and spec.strip():
            self.start(spec.strip())

    def start(self, spec: str, record_to: str | None = None) -> None:
        """Start reconstructing ``spec`` live (stopping whatever else was being shown)."""
        w = self.window
        self.stop()
        w.message.hide()
        w.worker.cancel("face")
        w.worker.cancel("frame")
        w._stop_video_process()
        w.tab.timeline.stop()
        w.tab.timeline.set_active(False)
        w._video = None  # its frames are the video's, not the live face's
        w.settings.setValue("live/last", spec)
        control = LiveControl()
        control.record_folder = record_to
        self.control, self.slot, self.shown = control, FrameSlot(), 0
        self._started_at = time.perf_counter()
        self.record_action.setEnabled(True)
        self.record_action.setChecked(bool(record_to))
        self.stop_action.setEnabled(True)
        w.statusBar().showMessage(f"Live: opening {_short(spec)}…")
        slot = self.slot
        w.worker.submit(
            f"live {_short(spec)}",
            run_live,
            w.session,
            spec,
            control,
            slot,
            tag=LIVE_TAG,
            on_partial=lambda _none: self._show(control, slot),
            on_done=lambda stats: self._ended(control, stats),
            on_error=lambda message: self._failed(control, spec, message),
        )
        self.started.emit(spec)

    def stop(self) -> None:
        """Stop the live job (its recording, if any, is written as it ends)."""
        if self.control is not None:
            self.window.worker.cancel(LIVE_TAG)

    def toggle_recording(self) -> None:
        if self.control is None:
            self.record_action.setChecked(False)
            return
        if self.control.record_folder:
            self.record(None)
            return
        start = str(Path(self.window._last_folder()) / "live_animation")
        folder = QFileDialog.getExistingDirectory(self.window, "Record the live animation into", start)
        self.record(folder or None)

    def record(self, folder: str | None) -> None:
        """Start recording into ``folder`` (None: stop; the animation is written then)."""
        if self.control is None:
            return
        self.control.record(folder)
        self.record_action.setChecked(bool(folder))
        self.window.statusBar().showMessage(
            f"Live: recording into {folder}" if folder else "Live: recording stopped; writing the animation",
            8000,
        )

    # ------------------------------------------------------------------ results

    def _show(self, control: LiveControl, slot: FrameSlot) -> None:
        face = slot.take()
        if face is None or control is not self.control:
            return
        w = self.window
        first = self.shown == 0
        if first:
            w._reset_view_next = True
            w.source = face.source
        w.set_face(face, keep_edits=not first)
        self.shown += 1
        now = time.perf_counter()
        if first:
            self._rate = (now, 0)
            w.statusBar().showMessage(f"Live: {face.source[5:]} · following the face")
        elif now - self._rate[0] > 1.0:  # the rate over the last second or so
            fps = (self.shown - self._rate[1]) / (now - self._rate[0])
            self._rate = (now, self.shown)
            recording = " · recording" if control.record_folder else ""
            w.statusBar().showMessage(f"Live: {face.source[5:]} · {fps:.1f} frames/s{recording}")
        self.face_shown.emit(face)

    def _ended(self, control: LiveControl, stats: dict) -> None:
        if control is self.control:
            self._reset()
        self.last_stats = stats
        recorded = [p for p in stats.get("recorded", []) if not p.endswith(".jsonl")]
        where = (
            f"; recorded {', '.join(Path(p).name for p in recorded)} in {Path(recorded[0]).parent}"
            if recorded
            else ""
        )
        self.window.statusBar().showMessage(
            f"Live stopped: {stats['frames']} frames at {stats['fps']:.1f} frames/s, "
            f"{stats['dropped']} dropped{where}",
            15000,
        )
        self.finished.emit(stats)

    def _failed(self, control: LiveControl, spec: str, message: str) -> None:
        if control is self.control:
            self._reset()
        self.window.show_error(f"live {spec}: {message}")
        self.finished.emit({"error": message, "spec": spec})

    def _reset(self) -> None:
        self.control = None
        self.record_action.setChecked(False)
        self.record_action.setEnabled(False)
        self.stop_action.setEnabled(False)


def _short(spec: str) -> str:
    """A file's name, a camera's number, a URL as given."""
    return Path(spec).name if "://" not in spec and not spec.isdigit() else spec
