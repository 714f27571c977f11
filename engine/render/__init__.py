"""Differentiable renderer in nvdiffrast's split: rasterize, interpolate, texture, SH shading.

* :func:`rasterize` is a vectorised z-buffer (no gradient): which triangle covers each pixel centre,
  and its screen-space barycentrics.
* :func:`interpolate` blends vertex attributes with those barycentrics, differentiably w.r.t. the
  attributes and, given ``verts_ndc``, w.r.t. the projected vertex positions (the barycentrics are
  recomputed from the triangle), so photometric gradients reach the shape and the viewpoint.
* :func:`sample_texture` and :func:`shade` texture and light the interpolants; :func:`shade` alone
  re-lights a cached :class:`RenderOutput` (texture + SH only, no rasterisation).

Spaces follow docs/conventions.md: crop NDC x right, y down, pixel centres ``align_corners=False``,
depth larger = closer. Triangles are counter-clockwise seen from the viewer (+z) in camera space, so
they are clockwise on screen (y down); back-facing ones are culled by default.

Modules: :mod:`~engine.render.raster` (rasterize, interpolate), :mod:`~engine.render.shade`
(texture, normals, SH shading), :mod:`~engine.render.renderer` (:class:`Renderer`, :func:`render`),
:mod:`~engine.render.uv` (image -> UV space), :mod:`~engine.render.pytorch3d` (optional backend).
"""

from engine.render.raster import Fragments, PixelList, front_facing, interpolate, rasterize
from engine.render.renderer import BACKENDS, Renderer, RenderOutput, pytorch3d_available, render
from engine.render.shade import sample_texture, shade, vertex_face_matrix, vertex_normals

__all__ = [
    "BACKENDS",
    "Fragments",
    "PixelList",
    "RenderOutput",
    "Renderer",
    "front_facing",
    "interpolate",
    "pytorch3d_available",
    "rasterize",
    "render",
    "sample_texture",
    "shade",
    "vertex_face_matrix",
    "vertex_normals",
]
