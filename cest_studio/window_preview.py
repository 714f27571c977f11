"""The window's two views of the current face: the 2D re-render and the 3D viewport.

The preview thread renders each controls state; the newest frame waits for a free event loop
(stale ones are dropped) and then updates both views. Part of MainWindow (a mixin).
"""

from __future__ import annotations

import time

from PySide6.QtCore import QTimer

from cest_studio.widgets import timed
from cest_studio.worker import freeze_heap


class PreviewMixin:
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
