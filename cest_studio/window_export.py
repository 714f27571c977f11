"""The window's exports: the export dialog (meshes, maps, screenshot, a video's sequence) and the
3D view's screenshot. The files are written on the engine thread. Part of MainWindow (a mixin).
"""

from __future__ import annotations

from pathlib import Path

from cest_studio import file_dialogs
from cest_studio.export_dialog import ExportDialog, export_folder


class ExportMixin:
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
        video = self._video
        sequence = options.get("sequence") and video is not None and video.saved
        total = {"files": written}

        def after_face(paths):
            total["files"] += paths
            if sequence:
                frames = video.frame_files()
                self.worker.submit(
                    "export the sequence",
                    self.session.export_sequence,
                    frames,
                    state,
                    second,
                    str(Path(folder) / "sequence"),
                    video.fps,
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
        path = file_dialogs.save_screenshot(self, self._last_folder())
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
