"""The renderer: one call from vertices, faces, UVs, texture and light to images and buffers."""

from __future__ import annotations

import importlib.util

import torch
import torch.nn.functional as F
from torch import Tensor

from engine.render.raster import Fragments, _interpolate_pixels, rasterize
from engine.render.shade import RenderOutput, _shade_pixels, shade, vertex_face_matrix, vertex_normals

BACKENDS = ("torch", "pytorch3d")


def _image_size(size: int | tuple[int, int]) -> tuple[int, int]:
    return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))


def pytorch3d_available() -> bool:
    """Whether the optional pytorch3d backend can be used (without importing it)."""
    return importlib.util.find_spec("pytorch3d") is not None


class Renderer:
    """A mesh's topology and UVs, ready to render on one device with one rasteriser backend.

    ``backend`` is ``"torch"`` (the default, always available) or ``"pytorch3d"`` (optional; its
    rasteriser replaces :func:`rasterize`, the rest is shared).
    """

    def __init__(self, faces: Tensor, uvs: Tensor, backend: str = "torch", cull_backfaces: bool = True):
        if backend not in BACKENDS:
            raise ValueError(f"unknown renderer backend {backend!r}; choose one of {BACKENDS}")
        if backend == "pytorch3d" and not pytorch3d_available():
            raise ImportError("the pytorch3d backend needs pytorch3d installed (optional)")
        self.faces = torch.as_tensor(faces, dtype=torch.long)
        self.uvs = torch.as_tensor(uvs, dtype=torch.float32)
        self.backend = backend
        self.cull_backfaces = cull_backfaces
        self._incidence = vertex_face_matrix(self.faces, self.uvs.shape[0])

    def to(self, device: torch.device | str) -> Renderer:
        self.faces, self.uvs = self.faces.to(device), self.uvs.to(device)
        self._incidence = vertex_face_matrix(self.faces, self.uvs.shape[0])
        return self

    def rasterize(self, verts_ndc: Tensor, size: int | tuple[int, int]) -> Fragments:
        height, width = _image_size(size)
        if self.backend == "pytorch3d":
            from engine.render import pytorch3d as render_pytorch3d

            return render_pytorch3d.rasterize(verts_ndc, self.faces, height, width, self.cull_backfaces)
        return rasterize(verts_ndc, self.faces, height, width, self.cull_backfaces)

    def render(
        self,
        verts_cam: Tensor,
        verts_ndc: Tensor,
        albedo: Tensor,
        light: Tensor,
        size: int | tuple[int, int],
        background: Tensor | None = None,
    ) -> RenderOutput:
        """Render (B, V, 3) camera-space / NDC vertices with a (B, 3, T, T) albedo map and (B, 9, 3) light."""
        frags = self.rasterize(verts_ndc, size)
        normals = vertex_normals(verts_cam, self.faces, self._incidence)
        uvs = self.uvs.to(normals.dtype).expand(verts_ndc.shape[0], -1, -1)
        attrs = torch.cat([uvs, normals, verts_ndc[..., 2:]], -1)
        values = _interpolate_pixels(attrs, self.faces, frags, verts_ndc)
        normals_px = F.normalize(values[:, 2:5], dim=1, eps=1e-12)
        interpolants = torch.cat([values[:, :2], normals_px, values[:, 5:]], 1)
        return _shade_pixels(frags, interpolants, albedo, light, background)

    def shade(
        self, cache: RenderOutput, albedo: Tensor, light: Tensor, background: Tensor | None = None
    ) -> RenderOutput:
        """Re-light / re-texture a previous render of this mesh: see :func:`shade`."""
        return shade(cache, albedo, light, background)


def render(
    verts_cam: Tensor,
    verts_ndc: Tensor,
    faces: Tensor,
    uvs: Tensor,
    albedo: Tensor,
    light: Tensor,
    size: int | tuple[int, int],
    background: Tensor | None = None,
) -> RenderOutput:
    """One-off render with the torch backend; keep a :class:`Renderer` for repeated renders."""
    renderer = Renderer(faces.to(verts_ndc.device), uvs.to(verts_ndc.device))
    return renderer.render(verts_cam, verts_ndc, albedo, light, size, background)
