"""Texture lookup, vertex normals and SH shading of rasterized pixels."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import cached_property

import torch
import torch.nn.functional as F
from torch import Tensor

from engine.render.raster import Fragments
from engine.sh import sh_shading


def sample_texture(texture: Tensor, uv: Tensor) -> Tensor:
    """Bilinear lookup of (B, C, T, T) textures at (B, H, W, 2) UVs (v = 0 at the bottom) -> (B, C, H, W)."""
    grid = torch.stack([uv[..., 0] * 2 - 1, 1 - uv[..., 1] * 2], -1)
    return F.grid_sample(texture, grid.to(texture.dtype), "bilinear", "border", align_corners=False)


class _SparseMatmul(torch.autograd.Function):
    """``matrix @ x`` for a sparse CSR matrix, differentiable in ``x`` through a cached transpose."""

    @staticmethod
    def forward(ctx, x: Tensor, matrix: Tensor, transpose: Tensor) -> Tensor:
        ctx.transpose = transpose
        return matrix @ x

    @staticmethod
    def backward(ctx, grad: Tensor):
        return ctx.transpose @ grad, None, None


def sparse_matmul(matrix: Tensor, x: Tensor, transpose: Tensor) -> Tensor:
    """``matrix @ x`` for a sparse CSR ``matrix`` (its ``transpose`` given), differentiable in ``x``."""
    return _SparseMatmul.apply(x, matrix, transpose)


def vertex_face_matrix(faces: Tensor, n_verts: int) -> tuple[Tensor, Tensor]:
    """Sparse CSR incidence (V, F) of vertices in faces, and its transpose (F, V)."""
    n_faces, ones = faces.shape[0], torch.ones(faces.numel(), device=faces.device)
    flat = faces.reshape(-1)
    order = torch.argsort(flat, stable=True)
    crow = torch.cat([flat.new_zeros(1), torch.bincount(flat, minlength=n_verts).cumsum(0)])
    crow_t = torch.arange(0, 3 * n_faces + 1, 3, device=faces.device)
    with warnings.catch_warnings():  # "sparse CSR support is in beta"
        warnings.simplefilter("ignore", UserWarning)
        matrix = torch.sparse_csr_tensor(crow, order // 3, ones, (n_verts, n_faces), check_invariants=False)
        transpose = torch.sparse_csr_tensor(
            crow_t, faces.sort(1).values.reshape(-1), ones, (n_faces, n_verts), check_invariants=False
        )
    return matrix, transpose


def vertex_normals(verts: Tensor, faces: Tensor, incidence: tuple[Tensor, Tensor] | None = None) -> Tensor:
    """Area-weighted unit vertex normals (B, V, 3) of counter-clockwise triangles.

    ``incidence`` is :func:`vertex_face_matrix` of the mesh, built on each call when not given.
    """
    batch, n_verts, _ = verts.shape
    matrix, transpose = incidence if incidence is not None else vertex_face_matrix(faces, n_verts)
    if matrix.dtype != verts.dtype:
        matrix, transpose = matrix.to(verts.dtype), transpose.to(verts.dtype)
    coords = verts.permute(2, 0, 1).reshape(3, -1)  # (3, B*V)
    offset = torch.arange(batch, device=faces.device) * n_verts
    corners = (faces.t()[:, None, :] + offset[None, :, None]).reshape(-1)  # corner-major
    p = coords.index_select(1, corners).view(3, 3, batch * faces.shape[0])
    edge1, edge2 = (p[:, 1:] - p[:, :1]).unbind(1)
    face_normals = torch.linalg.cross(edge1, edge2, dim=0)  # (3, B*F)
    per_face = face_normals.view(3 * batch, -1).t()  # (F, 3*B)
    summed = sparse_matmul(matrix, per_face, transpose)  # (V, 3*B)
    return F.normalize(summed.t().reshape(3, batch, n_verts).permute(1, 2, 0), dim=-1, eps=1e-12)


# ----------------------------------------------------------------------------------------- shade


def _shade_pixels(
    frags: Fragments, interpolants: Tensor, albedo: Tensor, light: Tensor, background: Tensor | None
) -> RenderOutput:
    """Texture and light the covered pixels' (N, 6) uv / normal / depth, then make the image."""
    pixels = frags.pixels
    texels = sample_texture(albedo, pixels.pack(interpolants[:, :2]).unsqueeze(1))  # (B, 3, 1, M)
    tex = pixels.unpack(texels.squeeze(2).transpose(1, 2))
    shading = pixels.unpack(sh_shading(pixels.pack(interpolants[:, 2:5]), light))
    image, mask = frags.to_image(tex * shading), frags.mask.to(tex.dtype)
    if background is not None:
        image = image + background * (1 - mask)
    return RenderOutput(image, mask, frags, interpolants, torch.cat([tex, shading], 1))


def shade(
    cache: RenderOutput, albedo: Tensor, light: Tensor, background: Tensor | None = None
) -> RenderOutput:
    """Re-light / re-texture a previous render: texture lookup + SH only, no rasterisation."""
    return _shade_pixels(cache.fragments, cache.interpolants, albedo, light, background)


@dataclass
class RenderOutput:
    """What a render produces; also the cache that :func:`shade` re-lights.

    ``image`` and ``mask`` are made eagerly; the other maps are scattered from the per-pixel rows
    on first access, so a training step that only needs the image does not pay for them.
    """

    image: Tensor  # (B, 3, H, W) albedo * shading over the background, not clamped
    mask: Tensor  # (B, 1, H, W) float {0, 1}
    fragments: Fragments
    interpolants: Tensor  # (N, 6) uv, unit normal, NDC depth of each covered pixel (Fragments.pixels)
    texels: Tensor  # (N, 6) albedo, shading of each covered pixel

    @cached_property
    def depth(self) -> Tensor:
        """(B, 1, H, W) interpolated NDC depth (larger = closer), 0 on the background."""
        return self.fragments.to_image(self.interpolants[:, 5:])

    @cached_property
    def normals(self) -> Tensor:
        """(B, 3, H, W) camera-space unit normals, 0 on the background."""
        return self.fragments.to_image(self.interpolants[:, 2:5])

    @cached_property
    def uv(self) -> Tensor:
        """(B, H, W, 2), 0 on the background."""
        return self.fragments.to_image(self.interpolants[:, :2]).permute(0, 2, 3, 1)

    @cached_property
    def albedo(self) -> Tensor:
        """(B, 3, H, W) textured albedo, 0 on the background."""
        return self.fragments.to_image(self.texels[:, :3])

    @cached_property
    def shading(self) -> Tensor:
        """(B, 3, H, W) SH shading, 0 on the background."""
        return self.fragments.to_image(self.texels[:, 3:])
