"""The window's video: reconstruct every frame in a child process, follow it on the timeline, scrub.

What is known of the video lives in a Qt-free :class:`~cest_studio.video_session.VideoSession`
(``self._video``); this mixin turns the job's messages and the timeline's moves into widget
updates and frame loads on the engine thread. Part of MainWindow (a mixin).
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from cest_studio.tasks import FaceResult, ModelSpec
from cest_studio.video_job import frame_path
from cest_studio.video_session import VideoSession
from cest_studio.widgets import timed
from cest_studio.worker import VideoProcess

log = logging.getLogger("cest_studio")


def short_paths(message: str, path: str) -> str:
    """The engine's messages name the whole path (twice, at times): the file's name is enough here."""
    name = Path(path).name
    text = message.replace(f"'{path}'", f"'{name}'").replace(str(path), name)
    return text


class VideoMixin:
    _video: VideoSession | None

    @property
    def _video_frames(self) -> dict[int, str]:
        """Frame index -> saved reconstruction of the current video ({} without one)."""
        return self._video.saved if self._video is not None else {}

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
        video = VideoSession(path=path, out_dir=folder, remember=remember, process=process)
        self._video = video
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
        if self._video and self._video.process.running():
            self._video.process.stop(grace_ms=4000)

    @timed
    def _video_message(self, video: VideoSession, message: dict) -> None:
        if video is not self._video:
            return
        if "info" in message:
            video.apply_info(message["info"])
            self.source = video.path
            self.tab.timeline.start(video.frames, video.fps)
            if video.remember:
                self._remember_file(video.path)
        elif "frame" in message:
            index = int(message["frame"])
            if video.add_frame(index, str(frame_path(video.out_dir, index))):
                self.tab.timeline.set_frame(index)
                self._request_frame(index)
        elif "progress" in message:
            done, total = message["progress"]
            self.tab.timeline.set_progress(int(done), int(total or 0))
        elif "done" in message:
            video.ended = True
            self._video_done(video, message["done"])
        elif "error" in message:
            video.ended = True
            self._video_ended(video)
            self.show_error(short_paths(str(message["error"]), video.path))

    def _video_process_finished(self, video: VideoSession, code: int, how: str) -> None:
        if video is not self._video or video.ended:
            return
        video.ended = True
        self._video_ended(video)
        if how == "stopped":
            self.statusBar().showMessage("Video reconstruction stopped", 8000)
        else:
            self.show_error(
                f"the video reconstruction {how} (exit code {code}); {len(video.saved)} frames were kept"
            )

    def _video_ended(self, video: VideoSession) -> None:
        """The timeline keeps the frames made; with none it is the greyed bar of "no video"."""
        if video.saved:
            self.tab.timeline.finish(len(video.saved))
        else:
            self.tab.timeline.set_active(False)

    @timed
    def _video_done(self, video: VideoSession, summary: dict) -> None:
        video.finish(summary)
        self.tab.timeline.finish(summary.get("frames", 0))
        state = "cancelled after" if summary.get("interrupted") else "done:"
        self.statusBar().showMessage(
            f"Video {state} {summary.get('frames', 0)} frames, {summary.get('faces', 0)} with a face "
            f"({summary.get('fps', 0):.2f} frames/s reconstructed)",
            10000,
        )
        if not video.saved:
            self.show_error(f"{Path(video.path).name}: no face found in any frame")
        elif summary.get("damaged"):
            self.message.show_message(
                f"{Path(video.path).name} is damaged: {summary['damaged']}; "
                f"{summary.get('frames', 0)} frames kept",
                "warning",
            )
        self.video_finished.emit(summary)

    def cancel_video(self) -> None:
        if self._video and self._video.process.running():
            self._video.process.stop(grace_ms=15000)
            self.statusBar().showMessage("Cancelling the video reconstruction after this frame…")

    @timed
    def show_frame(self, index: int) -> None:
        """Scrub: show the reconstruction of frame ``index`` (or the nearest earlier one with a face)."""
        video = self._video
        if video is None or not video.saved:
            return
        shown = video.shown_frame(index)
        if shown is None:
            self.tab.info.setText(f"frame {index + 1}: not reconstructed yet")
            return
        if shown != index:
            self.tab.info.setText(f"frame {index + 1}: no face; showing frame {shown + 1}")
        if self.face is not None and self.face.frame == shown and self.source == video.path:
            return
        self._request_frame(shown)

    def _request_frame(self, index: int) -> None:
        """Load a reconstructed frame on the engine thread; while one loads, only the newest wish waits."""
        if self._video is not None and self._video.want(index):
            self._load_wanted_frame()

    def _load_wanted_frame(self) -> None:
        video = self._video
        if video is None:
            return
        index = video.take_wanted()
        if index is None:
            return
        if index in video.cache:
            self._frame_loaded(video, video.cache[index])
            return
        video.loading = True
        self.worker.submit(
            f"load frame {index + 1}",
            self.session.load_frame,
            video.saved[index],
            tag="frame",
            on_done=lambda face: self._frame_loaded(video, face),
            on_error=lambda message: self._frame_failed(video, message),
        )

    def _frame_loaded(self, video: VideoSession, face: FaceResult) -> None:
        video.loading = False
        if video is self._video:
            video.keep(face)
            first = self.face is None or self.face.frame is None
            self.set_face(face, keep_edits=not first)
        self._load_wanted_frame()

    def _frame_failed(self, video: VideoSession, message: str) -> None:
        video.loading = False
        if video is self._video:
            self.show_error(f"cannot show that frame: {message}")
        self._load_wanted_frame()
