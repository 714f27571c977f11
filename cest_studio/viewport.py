"""The 3D viewport: the reconstructed mesh with its (lit) texture in a pyvistaqt QtInteractor.

The mesh is drawn in camera space (x right, y up, z toward the viewer), so the default view looks
at the face as the photo does; drag to rotate, wheel to zoom, R (or View > Reset view) to reset.
VTK's own lighting is off: the texture the engine computes already holds albedo x SH shading, so
the viewport shows the relighting the sliders make. pyvistaqt is imported only when the widget is
realised (it takes a second or two), so the window opens first.

The interactor (a QOpenGLWidget) sits inside a *native* child window. Without it, Qt composes the
whole main window through OpenGL on every repaint of any widget (a progress bar tick, a label),
which with a software OpenGL (Mesa llvmpipe) blocks the GUI thread for 40-120 ms each time;
inside its own native window only the viewport is composed that way (measured: the event loop's
longest gap while a progress bar ticks at 20 Hz drops from 57-125 ms to 16-25 ms).
"""

from __future__ import annotations

import os
import time

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QLabel, QSizePolicy, QVBoxLayout, QWidget

BACKGROUND = "#1e2124"


class Viewport(QWidget):
    """A placeholder until :meth:`create` builds the VTK interactor; then mesh and texture updates."""

    ready = Signal()
    frame_rendered = Signal(float)  # milliseconds the last frame took to render

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setMinimumSize(320, 320)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self._layout = QVBoxLayout(self)
        self._layout.setContentsMargins(0, 0, 0, 0)
        self._placeholder = QLabel("Loading the 3D view…")
        self._placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._placeholder.setStyleSheet(f"background: {BACKGROUND}; color: #9aa0a6;")
        self._layout.addWidget(self._placeholder)
        self._holder: QWidget | None = None
        self._ready = False
        self.plotter = None
        self.error: str | None = None
        self._mesh = self._grid = self._actor = None
        self._faces_key = None
        self.frame_times: list[float] = []

    # ------------------------------------------------------------------------ set-up

    def create(self) -> bool:
        """Build the interactor (pyvistaqt must import); False with ``error`` set when it cannot."""
        if self.plotter is not None:
            return True
        os.environ.setdefault("QT_API", "pyside6")
        holder = QWidget(self)
        holder.setAttribute(Qt.WidgetAttribute.WA_DontCreateNativeAncestors)
        holder.setAttribute(Qt.WidgetAttribute.WA_NativeWindow)
        holder_layout = QVBoxLayout(holder)
        holder_layout.setContentsMargins(0, 0, 0, 0)
        try:
            import pyvista as pv
            from pyvistaqt import QtInteractor

            pv.global_theme.allow_empty_mesh = True
            self.plotter = _timed_interactor(QtInteractor, self)(holder, auto_update=False, multi_samples=0)
        except Exception as exc:  # noqa: BLE001 - no OpenGL, no VTK: the rest of the app still works
            holder.deleteLater()
            self.error = f"3D view unavailable: {type(exc).__name__}: {exc}"
            self._placeholder.setText(self.error)
            return False
        self.plotter.set_background(BACKGROUND)
        self.plotter.enable_trackball_style()
        holder_layout.addWidget(self.plotter)
        self._layout.removeWidget(self._placeholder)
        self._placeholder.deleteLater()
        self._layout.addWidget(holder)
        self._placeholder, self._holder = None, holder
        from PySide6.QtCore import QTimer

        QTimer.singleShot(
            0, self._warm_up
        )  # a separate pass of the event loop: two short stalls, not one long
        return True

    @property
    def is_ready(self) -> bool:
        return self.plotter is not None and self._ready

    def _warm_up(self) -> None:
        """Draw a textured triangle once, so the shaders compile now and not at the first face."""
        self._ready = True
        self.show_face(
            np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]], np.float32),
            np.array([[0, 1, 2]]),
            np.array([[0, 0], [1, 0], [0, 1]], np.float32),
            np.full((4, 4, 3), 90, np.uint8),
        )
        self.clear()
        self.frame_times.clear()
        self._faces_key = None
        self.ready.emit()

    @property
    def has_mesh(self) -> bool:
        return self._actor is not None

    # ------------------------------------------------------------------------ content

    def show_face(
        self,
        vertices: np.ndarray,
        faces: np.ndarray,
        uvs: np.ndarray,
        texture: np.ndarray,
        reset: bool = True,
    ) -> None:
        """A new face with its texture (and, with ``reset``, the default view). The mesh and texture
        objects are reused when the mesh and texture size are the same (every face of one face
        model, every frame of a video): no new GPU buffers."""
        if self.plotter is None:
            return
        faces = np.asarray(faces, dtype=np.int64)
        key = (faces.shape, hash(faces.tobytes()), hash(np.asarray(uvs, np.float32).tobytes()))
        same = (
            self._mesh is not None
            and self._faces_key == key
            and texture.shape[:2] == (self._grid.dimensions[1], self._grid.dimensions[0])
        )
        if same:
            self.update_face(texture, vertices, render=False)
        else:
            self._build(vertices, faces, uvs, texture)
            self._faces_key = key
            reset = True
        if reset:
            self.reset_view(render=False)
        self.render()

    def _build(self, vertices, faces, uvs, texture) -> None:
        import pyvista as pv

        cells = np.hstack([np.full((len(faces), 1), 3, np.int64), faces]).ravel()
        mesh = pv.PolyData(np.asarray(vertices, np.float32), cells)
        mesh.active_texture_coordinates = np.asarray(uvs, np.float32)
        grid = pv.ImageData(dimensions=(texture.shape[1], texture.shape[0], 1))
        grid.point_data["Image"] = _vtk_rows(texture)
        grid.set_active_scalars("Image")
        tex = pv.Texture(grid)
        tex.interpolate = True
        if self._actor is not None:
            self.plotter.remove_actor(self._actor, render=False)
        self._actor = self.plotter.add_mesh(
            mesh, texture=tex, lighting=False, scalars=None, rgb=False, reset_camera=False, name="face"
        )
        self._actor.GetProperty().BackfaceCullingOn()  # see through the eye and mouth openings
        self._mesh, self._grid = mesh, grid

    def update_face(
        self, texture: np.ndarray, vertices: np.ndarray | None = None, render: bool = True
    ) -> None:
        """New texture (same size) and, when the pose changed, new vertex positions."""
        if self._grid is None:
            return
        if texture.shape[:2] != (self._grid.dimensions[1], self._grid.dimensions[0]):
            return
        self._grid.point_data["Image"][:] = _vtk_rows(texture)
        self._grid.Modified()
        if vertices is not None:
            self._mesh.points = np.asarray(vertices, np.float32)
            self._mesh.Modified()
        if render:
            self.render()

    def clear(self) -> None:
        if self.plotter is not None and self._actor is not None:
            self.plotter.remove_actor(self._actor, render=False)
        self._actor = self._mesh = self._grid = None
        self._faces_key = None

    def render(self) -> None:
        """Schedule a frame. The widget renders in its paint event (pyvistaqt's paintGL always
        renders), so asking VTK to render here as well would draw every frame twice; scheduling
        also lets the event loop breathe between our update and the frame."""
        if self.plotter is not None:
            self.plotter.update()

    def _painted(self, ms: float) -> None:
        self.frame_times.append(ms)
        del self.frame_times[:-500]
        self.frame_rendered.emit(ms)

    def reset_view(self, render: bool = True) -> None:
        if self.plotter is None:
            return
        self.plotter.view_xy(render=False)
        self.plotter.reset_camera(render=False)
        self.plotter.camera.zoom(1.25)
        if render:
            self.render()

    # ------------------------------------------------------------------------ images

    def image(self) -> np.ndarray | None:
        """HxWx3 uint8 of what the viewport shows (rendered now)."""
        if self.plotter is None:
            return None
        self.plotter.render()  # frames are drawn in the next paint; a picture must not wait for it
        return np.asarray(self.plotter.screenshot(return_img=True))[..., :3].copy()

    def qimage(self) -> QImage | None:
        array = self.image()
        if array is None:
            return None
        array = np.ascontiguousarray(array)
        h, w = array.shape[:2]
        return QImage(array.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()

    def close_plotter(self) -> None:
        if self.plotter is not None:
            self.plotter.close()
            self.plotter = None


def _timed_interactor(base, viewport: Viewport):
    """pyvistaqt's interactor, timing each paint (= VTK render + blit): the viewport's frame time."""

    class TimedInteractor(base):
        def paintGL(self):  # noqa: N802 - Qt's name
            start = time.perf_counter()
            super().paintGL()
            viewport._painted((time.perf_counter() - start) * 1000)

    return TimedInteractor


def install_gl_format() -> None:
    """The OpenGL format the VTK widget needs, as the process default, before any window exists
    (pyvistaqt sets the same when the widget is built, which here is after the window shows)."""
    from PySide6.QtGui import QSurfaceFormat

    fmt = QSurfaceFormat()
    fmt.setRenderableType(QSurfaceFormat.RenderableType.OpenGL)
    fmt.setProfile(QSurfaceFormat.OpenGLContextProfile.CoreProfile)
    fmt.setVersion(3, 2)
    fmt.setSwapBehavior(QSurfaceFormat.SwapBehavior.DoubleBuffer)
    for size in (fmt.setRedBufferSize, fmt.setGreenBufferSize, fmt.setBlueBufferSize, fmt.setAlphaBufferSize):
        size(8)
    fmt.setDepthBufferSize(8)
    fmt.setStencilBufferSize(0)
    fmt.setSamples(0)
    QSurfaceFormat.setDefaultFormat(fmt)


def _vtk_rows(texture: np.ndarray) -> np.ndarray:
    """An image (row 0 at the top, i.e. v = 1) as VTK's point order (row 0 at the bottom)."""
    return np.ascontiguousarray(texture[::-1]).reshape(-1, texture.shape[2])
