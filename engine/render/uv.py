"""Image -> UV space: sample the input colours of every texel of the face model's UV map.

The UV layout is fixed, so which triangle covers each texel (and its barycentrics) is computed
once per texture size, as a sparse (texels x vertices) matrix of barycentric weights; unwrapping a
batch is then one sparse matrix product and a grid_sample.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F

from engine.facemodel import FaceModel
from engine.render import interpolate, rasterize, vertex_face_matrix, vertex_normals
from engine.render.shade import sparse_matmul


def _uv_layout(faces: torch.Tensor, uvs: torch.Tensor, size: int):
    uv_ndc = torch.stack([uvs[:, 0] * 2 - 1, 1 - uvs[:, 1] * 2, torch.zeros_like(uvs[:, 0])], -1)
    frags = rasterize(uv_ndc[None], faces, size, size, cull_backfaces=False)
    face_index = frags.face_index[0]
    covered = face_index >= 0
    corners = faces[face_index.clamp_min(0)]  # (T, T, 3)
    return corners, frags.bary[0] * covered[..., None], covered


def uv_layout(model: FaceModel, size: int):
    """(corners (T,T,3) long, bary (T,T,3), covered (T,T) bool) of the model's UV chart.

    Computed once per model and texture size (kept on the model), then a dictionary lookup.
    """
    cache = model.__dict__.setdefault("_uv_layouts", {})
    if size not in cache:
        cache[size] = _uv_layout(model.faces, model.uvs, size)
    return cache[size]


def chart_brightness_normalised(texture: torch.Tensor, covered: torch.Tensor) -> torch.Tensor:
    """(B, C, T, T) maps, 0 off the chart ``covered`` (T, T), each scaled to mean 1 over the chart:
    what differs between two such maps is their pattern, not their exposure."""
    texels = texture * covered
    mean = texels.sum((1, 2, 3), keepdim=True) / (covered.sum() * texture.shape[1])
    return texels / mean.clamp_min(1e-3)


def _cached(model: FaceModel, name: str, key, build):
    """``build()``, kept on the model under ``name`` and ``key`` (the model's data never changes)."""
    cache = model.__dict__.setdefault(name, {})
    if key not in cache:
        cache[key] = build()
    return cache[key]


def _uv_matrix(model: FaceModel, size: int, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """The sparse CSR (T*T, V) barycentric weights of every texel's corners, and its transpose."""

    def build():
        corners, bary, _ = uv_layout(model, size)
        rows = torch.arange(size * size, device=corners.device).repeat_interleave(3)
        index = torch.stack([rows, corners.reshape(-1)])
        shape = (size * size, model.n_vertices)
        weights = bary.reshape(-1).to(dtype)
        matrix = torch.sparse_coo_tensor(index, weights, shape, check_invariants=True).coalesce()
        with warnings.catch_warnings():  # "sparse CSR support is in beta"
            warnings.simplefilter("ignore", UserWarning)
            return matrix.to_sparse_csr(), matrix.t().coalesce().to_sparse_csr()

    return _cached(model, "_uv_matrices", (size, dtype), build)


def face_incidence(model: FaceModel) -> tuple[torch.Tensor, torch.Tensor]:
    """engine.render.vertex_face_matrix of the model's mesh, built once per model."""
    return _cached(model, "_incidence", "faces", lambda: vertex_face_matrix(model.faces, model.n_vertices))


def vertex_attrs_to_uv(model: FaceModel, attrs: torch.Tensor, size: int) -> torch.Tensor:
    """Per-vertex (B, V, C) -> per-texel (B, C, T, T), differentiable w.r.t. attrs; 0 off the chart."""
    batch, n_verts, channels = attrs.shape
    matrix, transpose = _uv_matrix(model, size, attrs.dtype)
    flat = attrs.permute(1, 0, 2).reshape(n_verts, batch * channels)
    texels = sparse_matmul(matrix, flat, transpose)  # (T*T, B*C)
    return texels.t().reshape(batch, channels, size, size)


def uv_normals(model: FaceModel, verts_cam: torch.Tensor, size: int) -> torch.Tensor:
    """Unit camera-space normals (B, V, 3 vertices in) of the surface at every texel (B, 3, T, T);
    0 off the chart."""
    normals = vertex_normals(verts_cam, model.faces, face_incidence(model))
    return F.normalize(vertex_attrs_to_uv(model, normals, size), dim=1)


def unwrap_texture(
    image: torch.Tensor,
    verts_ndc: torch.Tensor,
    verts_cam: torch.Tensor,
    model: FaceModel,
    size: int,
    occlusion: bool = True,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample crop images (B, 3, S, S) into UV maps -> (texture (B,3,T,T), visibility (B,1,T,T) in [0,1]).

    Visibility is the surface's facing ratio toward the camera (cosine), zero where the texel is
    hidden behind another part of the face (when ``occlusion``) or off the UV chart.
    """
    normals = vertex_normals(verts_cam, model.faces, face_incidence(model))
    attrs = torch.cat([verts_ndc, normals[..., 2:]], -1)  # x, y, depth, facing
    texel = vertex_attrs_to_uv(model, attrs, size)  # (B, 4, T, T)
    grid = texel[:, :2].permute(0, 2, 3, 1)
    texture = F.grid_sample(image, grid, "bilinear", "border", align_corners=False)
    visibility = texel[:, 3:4].clamp(0, 1) * uv_layout(model, size)[2].to(image.dtype)
    if occlusion:  # a depth buffer of at most 128 px tells what hides what well enough
        visibility = visibility * _unoccluded(verts_ndc, model, texel, min(image.shape[-1], 128))
    return texture * (visibility > 0), visibility


@torch.no_grad()
def _unoccluded(verts_ndc, model, texel, image_size: int) -> torch.Tensor:
    """1 where a texel's depth is not behind the depth buffer of the face seen from the camera."""
    frags = rasterize(verts_ndc, model.faces, image_size, image_size)
    depth = interpolate(verts_ndc[..., 2:], model.faces, frags).permute(0, 3, 1, 2)
    depth = torch.where(frags.mask > 0, depth, torch.full_like(depth, -1e4))
    seen = F.grid_sample(depth, texel[:, :2].permute(0, 2, 3, 1), "nearest", "border", align_corners=False)
    tolerance = 0.02 * (verts_ndc[..., 2].amax(1) - verts_ndc[..., 2].amin(1)).reshape(-1, 1, 1, 1)
    return (texel[:, 2:3] >= seen - tolerance).to(verts_ndc.dtype)


def symmetric_fill(texture: torch.Tensor, visibility: torch.Tensor) -> torch.Tensor:
    """Fill poorly seen texels from their mirror twins (u -> 1 - u), weighting by visibility."""
    mirror_tex, mirror_vis = texture.flip(-1), visibility.flip(-1)
    total = (visibility + mirror_vis).clamp_min(1e-6)
    blended = (texture * visibility + mirror_tex * mirror_vis) / total
    keep = visibility.clamp(0, 1) ** 0.5
    return keep * texture + (1 - keep) * blended


def pad_chart(texture: torch.Tensor, covered: torch.Tensor, passes: int = 8) -> torch.Tensor:
    """Bleed known texels' colours into the unknown ones around them (``covered`` = known).

    Keeps bilinear lookups at the chart's edges clean and fills texels never seen.
    """
    weight = covered.to(texture.dtype).expand(texture.shape[0], 1, *covered.shape[-2:])
    colour = texture * weight
    for _ in range(passes):
        grown_w = F.avg_pool2d(weight, 3, 1, 1)
        grown_c = F.avg_pool2d(colour, 3, 1, 1)
        fill = (weight == 0) & (grown_w > 0)
        colour = torch.where(fill, grown_c / grown_w.clamp_min(1e-6), colour)
        weight = torch.where(fill, torch.ones_like(weight), weight)
    return colour
