"""File > Export animation…: a reconstructed video as animation.glb + blendshapes.csv.

The same writers as ``cest reconstruct VIDEO --animation`` (engine/reconstruct/animation.py), run on the
engine thread from the video job's folder (its frames.jsonl and saved frames). Widgets and wiring only.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QFileDialog


class AnimationExport(QObject):
    """Owns the action's logic; the window gives it its worker, session and the current video."""

    exported = Signal(list)  # the written paths

    def __init__(self, window):
        super().__init__(window)
        self.window = window

    def available(self) -> str | None:
        """None when there is a finished video to export, else why not."""
        video = self.window._video
        if not video:
            return "open and reconstruct a video first (animation needs a video)"
        if not video.done:
            return "the video is still being reconstructed: export the animation when it has finished"
        if not video.saved:
            return "no frame of the video has a face"
        return None

    def dialog(self) -> None:
        why = self.available()
        if why:
            self.window.show_error(why)
            return
        video = self.window._video
        start = str(Path(self.window._last_folder()) / f"{Path(video.path).stem}_animation")
        folder = QFileDialog.getExistingDirectory(self.window, "Export the animation into", start)
        if folder:
            self.export_to(folder)

    def export_to(self, folder: str) -> None:
        """Write animation.glb and blendshapes.csv into ``folder`` (tests call this directly)."""
        why = self.available()
        if why:
            self.window.show_error(why)
            return
        video, window = self.window._video, self.window
        window.statusBar().showMessage(f"Exporting the animation to {folder}…")
        window.worker.submit(
            "export the animation",
            window.session.export_animation,
            video.out_dir,
            dict(video.saved),
            video.fps,
            video.size or (0, 0),
            folder,
            tag="export",
            on_done=self._done,
            on_error=lambda message: window.show_error(f"animation export failed: {message}"),
        )

    def _done(self, paths: list[str]) -> None:
        self.window.statusBar().showMessage(
            f"Exported the animation: {', '.join(Path(p).name for p in paths)}", 10000
        )
        self.exported.emit(paths)
