"""Rasterize and interpolate in nvdiffrast's split: which face covers each pixel, and where."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch
from torch import Tensor

_EPS = 1e-5  # inside-test tolerance in barycentric units: no cracks between neighbouring triangles


@dataclass
class PixelList:
    """The N covered pixels of a batch in raster order (grouped by image), and a padded layout.

    Per-pixel work runs on (N, C) rows; :meth:`pack` lays them out as (B, M, C), M the most pixels of
    any image, for the batched ops (``grid_sample``, SH shading) and :meth:`unpack` undoes it.
    """

    index: Tensor  # (N,) flat index into B*H*W
    batch: Tensor  # (N,) image of each pixel
    face: Tensor  # (N,) covering face
    bary: Tensor  # (N, 3) its barycentrics
    batch_size: int  # B
    size: int  # M
    slot: Tensor | None  # (N,) row in the padded (B*M) layout; None when B == 1 (no padding)

    @classmethod
    def build(cls, index: Tensor, face: Tensor, bary: Tensor, shape: tuple[int, int, int]) -> PixelList:
        """From the flat indices (into B*H*W, ascending) of covered pixels, their faces, barycentrics."""
        batch = index // (shape[1] * shape[2])
        if shape[0] == 1:
            return cls(index, batch, face, bary, 1, len(index), None)
        counts = torch.bincount(batch, minlength=shape[0])
        size = int(counts.max())
        start = (torch.cumsum(counts, 0) - counts).index_select(0, batch)
        slot = batch * size + torch.arange(len(index), device=index.device) - start
        return cls(index, batch, face, bary, shape[0], size, slot)

    def pack(self, rows: Tensor) -> Tensor:
        if self.slot is None:
            return rows.unsqueeze(0)
        padded = rows.new_zeros(self.batch_size * self.size, rows.shape[1]).index_copy(0, self.slot, rows)
        return padded.view(self.batch_size, self.size, rows.shape[1])

    def unpack(self, padded: Tensor) -> Tensor:
        if self.slot is None:
            return padded[0]
        return padded.reshape(-1, padded.shape[-1]).index_select(0, self.slot)


@dataclass
class Fragments:
    """Rasteriser output: the face covering each pixel centre (-1 = background), and where.

    The covered pixels are kept as a :class:`PixelList` (what the rest of the pipeline uses); the
    dense barycentrics and mask are made from it on first access.
    """

    face_index: Tensor  # (B, H, W) long
    pixels: PixelList

    @classmethod
    def from_dense(cls, face_index: Tensor, bary: Tensor) -> Fragments:
        """From (B, H, W) face indices and (B, H, W, 3) barycentrics (another rasteriser's output)."""
        flat = face_index.reshape(-1)
        index = flat.ge(0).nonzero().squeeze(1)
        face, bary = flat.index_select(0, index), bary.reshape(-1, 3).index_select(0, index)
        return cls(face_index, PixelList.build(index, face, bary, tuple(face_index.shape)))

    @cached_property
    def bary(self) -> Tensor:
        """(B, H, W, 3) barycentrics, 0 on the background."""
        return self.to_image(self.pixels.bary).permute(0, 2, 3, 1)

    @cached_property
    def mask(self) -> Tensor:
        """(B, 1, H, W) float {0, 1}."""
        return self.face_index.ge(0).unsqueeze(1).float()

    def to_image(self, rows: Tensor) -> Tensor:
        """Scatter per-pixel rows (N, C) into images (B, C, H, W), 0 on the background."""
        batch, height, width = self.face_index.shape
        out = rows.new_zeros(batch * height * width, rows.shape[1]).index_copy(0, self.pixels.index, rows)
        return out.view(batch, height, width, -1).permute(0, 3, 1, 2)


# ----------------------------------------------------------------------------------- rasterizer


def _to_pixels(xy: Tensor, height: int, width: int) -> Tensor:
    """NDC (..., 2) -> pixel coordinates whose integer values are pixel centres."""
    return (xy + 1) * xy.new_tensor([width / 2, height / 2]) - 0.5


def front_facing(verts_ndc: Tensor, faces: Tensor) -> Tensor:
    """(B, F) bool: the triangle is counter-clockwise seen from the viewer (clockwise on screen)."""
    tri = verts_ndc[:, faces, :2]  # (B, F, 3, 2)
    e1, e2 = tri[:, :, 1] - tri[:, :, 0], tri[:, :, 2] - tri[:, :, 0]
    return _barycentric_planes(*e1.unbind(-1), *e2.unbind(-1))[0] < 0


def _barycentric_planes(e1x: Tensor, e1y: Tensor, e2x: Tensor, e2y: Tensor) -> tuple[Tensor, ...]:
    """Signed double area and the planes of b1, b2 of triangles with edges e1 = p1 - p0, e2 = p2 - p0.

    With dx = x - x0, dy = y - y0 (pixel units): ``b1 = a1 dx + c1 dy``, ``b2 = a2 dx + c2 dy``.
    """
    area = e1x * e2y - e1y * e2x  # < 0: counter-clockwise seen from +z (screen y points down)
    inv = 1 / area
    return area, e2y * inv, -e2x * inv, -e1y * inv, e1x * inv


def _triangle_setup(verts: Tensor, faces: Tensor, height: int, width: int, cull: bool):
    """The triangles that can cover a pixel centre: ids (b*F + f), params (13, K), ints (3, K).

    In pixel units and relative to the first corner (dx = x - x0, dy = y - y0): barycentric
    ``b_k = a_k dx + c_k dy (+1 for k = 0)``, depth ``z = z0 + zx dx + zy dy``. Params hold
    ``x0 y0 z0 zx zy a0 a1 a2 c0 c1 c2 lo_x hi_x`` (the bounding box's pixel columns); ints hold
    ``lo_y, rows, base`` (the box's first pixel row, its row count, the image's offset in B*H*W).
    """
    batch, n_verts, _ = verts.shape
    flat = (faces.reshape(1, -1) + (torch.arange(batch, device=faces.device) * n_verts)[:, None]).reshape(-1)
    table = torch.cat([_to_pixels(verts[..., :2], height, width), verts[..., 2:]], -1).reshape(-1, 3)
    x, y, z = table.index_select(0, flat).view(-1, 3, 3).permute(2, 1, 0).contiguous()  # (3, B*F) each
    area, a1, c1, a2, c2 = _barycentric_planes(x[1] - x[0], y[1] - y[0], x[2] - x[0], y[2] - y[0])
    lo_x = x.amin(0).ceil_().clamp_min_(0)
    lo_y = y.amin(0).ceil_().clamp_min_(0)
    hi_x = x.amax(0).floor_().clamp_max_(width - 1)
    rows = y.amax(0).floor_().clamp_max_(height - 1) - lo_y + 1
    keep = (hi_x >= lo_x) & (rows > 0) & (area < 0 if cull else area != 0)
    ids = keep.nonzero().squeeze(1)
    x0, y0, z0, dz1, dz2 = x[0], y[0], z[0], z[1] - z[0], z[2] - z[0]
    params = torch.stack(
        [x0, y0, z0, a1 * dz1 + a2 * dz2, c1 * dz1 + c2 * dz2, -a1 - a2, a1, a2, -c1 - c2, c1, c2, lo_x, hi_x]
    )
    base = (torch.arange(batch, device=ids.device) * (height * width)).repeat_interleave(faces.shape[0])
    ints = torch.stack([lo_y.long(), rows.long(), base])
    return ids, params.index_select(1, ids), ints.index_select(1, ids)


def _expand(counts: Tensor) -> tuple[Tensor, Tensor]:
    """For ``counts`` items per group: (group of each item, index of the item within its group)."""
    group = torch.repeat_interleave(counts)
    start = (torch.cumsum(counts, 0) - counts).index_select(0, group)
    return group, torch.arange(len(group), device=group.device) - start


def _spans(params: Tensor, ints: Tensor, width: int):
    """Per triangle and pixel row, the exact run of covered pixel centres.

    Returns (triangle row, first pixel's flat index, pixel count, depth at the first pixel and its
    step along the row).
    """
    tri, row = _expand(ints[1])
    p = params.index_select(1, tri)
    y = ints[0].index_select(0, tri) + row
    dy = y.to(p.dtype) - p[1]
    slope = p[5:8]  # d b_k / dx; along the row b_k = slope * dx + offset >= -eps
    offset = p[8:11] * dy
    offset[0] += 1
    bound = (-_EPS - offset) / slope
    lower = bound.masked_fill(slope <= 0, -torch.inf).amax(0)
    upper = bound.masked_fill(slope >= 0, torch.inf).amin(0)
    closed = ((slope == 0) & (offset < -_EPS)).any(0)  # an edge parallel to the row shuts it out
    x_lo = torch.clamp((p[0] + lower).ceil(), p[11], p[12] + 1)
    x_hi = torch.clamp((p[0] + upper).floor(), p[11] - 1, p[12])
    count = (x_hi - x_lo + 1).clamp_min_(0).masked_fill_(closed, 0).long()
    depth = p[2] + p[3] * (x_lo - p[0]) + p[4] * dy
    first = ints[2].index_select(0, tri) + y * width + x_lo.long()
    return tri, first, count, depth, p[3]


@torch.no_grad()
def rasterize(
    verts_ndc: Tensor, faces: Tensor, height: int, width: int, cull_backfaces: bool = True
) -> Fragments:
    """Z-buffer (B, V, 3) crop-NDC vertices with (F, 3) faces into ``height`` x ``width`` fragments.

    The closest (largest z) triangle whose interior holds a pixel centre wins. No gradient: use
    :func:`interpolate` with ``verts_ndc`` for gradients w.r.t. vertex positions.
    """
    batch = verts_ndc.shape[0]
    verts = verts_ndc.detach().float()
    ids, params, ints = _triangle_setup(verts, faces, height, width, cull_backfaces)
    tri, first, count, depth, depth_step = _spans(params, ints, width)
    span, step = _expand(count)
    z = depth.index_select(0, span) + depth_step.index_select(0, span) * step
    face_bits = max(len(ids), 1).bit_length()
    levels = (1 << min(62 - face_bits, 32)) - 1
    z_min, z_max = verts[..., 2].min(), verts[..., 2].max()
    zq = ((z - z_min) * (levels / (z_max - z_min).clamp_min(1e-12))).long().clamp_(0, levels)
    zbuf = torch.full((batch * height * width,), -1, dtype=torch.long, device=verts.device)
    key = (zq << face_bits) | tri.index_select(0, span)
    zbuf.scatter_reduce_(0, first.index_select(0, span) + step, key, "amax")
    pix = zbuf.ge(0).nonzero().squeeze(1)
    win = zbuf.index_select(0, pix) & ((1 << face_bits) - 1)
    shape = (batch, height, width)
    return _fragments(pix, ids.index_select(0, win), params.index_select(1, win), shape, faces.shape[0])


def _fragments(pix: Tensor, ids: Tensor, params: Tensor, shape: tuple, n_faces: int) -> Fragments:
    """Fragments of the covered pixels ``pix``, won by triangles ``ids`` with ``params`` (13, N)."""
    dx = (pix % shape[2]).to(params.dtype) - params[0]
    dy = (pix // shape[2] % shape[1]).to(params.dtype) - params[1]
    b1 = params[6] * dx + params[9] * dy
    b2 = params[7] * dx + params[10] * dy
    face = ids % n_faces
    face_index = torch.full((shape[0] * shape[1] * shape[2],), -1, dtype=torch.long, device=pix.device)
    face_index.index_copy_(0, pix, face)
    pixels = PixelList.build(pix, face, torch.stack([1 - b1 - b2, b1, b2], 1), shape)
    return Fragments(face_index.view(shape), pixels)


# ------------------------------------------------------------------------- interpolation, texture


def _screen_bary(verts_ndc: Tensor, corners: Tensor, pix: Tensor, height: int, width: int) -> Tensor:
    """Differentiable barycentrics (3, N) of pixel centres ``pix`` in triangles ``corners`` (3, N)."""
    pxy = _to_pixels(verts_ndc[..., :2], height, width).reshape(-1, 2)
    x, y = pxy.index_select(0, corners.reshape(-1)).view(3, -1, 2).unbind(-1)
    (x0, x1, x2), (y0, y1, y2) = x.unbind(0), y.unbind(0)
    _, a1, c1, a2, c2 = _barycentric_planes(x1 - x0, y1 - y0, x2 - x0, y2 - y0)
    dx = (pix % width).to(x0.dtype) - x0
    dy = (pix // width % height).to(x0.dtype) - y0
    b1, b2 = a1 * dx + c1 * dy, a2 * dx + c2 * dy
    return torch.stack([1 - b1 - b2, b1, b2])


def _interpolate_pixels(attrs: Tensor, faces: Tensor, frags: Fragments, verts_ndc: Tensor | None) -> Tensor:
    """Attributes (B, V, C) at the covered pixels -> (N, C); see :func:`interpolate`."""
    n_verts, channels = attrs.shape[1:]
    height, width = frags.face_index.shape[1:]
    pixels = frags.pixels
    corners = faces.t().index_select(1, pixels.face) + pixels.batch * n_verts  # (3, N) rows of B*V
    if verts_ndc is None:
        bary = pixels.bary.t().to(attrs.dtype)
    else:
        bary = _screen_bary(verts_ndc, corners, pixels.index, height, width)
    values = attrs.reshape(-1, channels).index_select(0, corners.reshape(-1)).view(3, -1, channels)
    return (bary.unsqueeze(2) * values).sum(0)


def interpolate(attrs: Tensor, faces: Tensor, frags: Fragments, verts_ndc: Tensor | None = None) -> Tensor:
    """Per-vertex attributes (B, V, C) -> per-pixel (B, H, W, C), 0 on the background.

    Differentiable w.r.t. ``attrs``; with ``verts_ndc`` (B, V, 3) the barycentrics are recomputed
    from the projected triangles so that gradients also reach the vertices' x, y.
    """
    values = _interpolate_pixels(attrs, faces, frags, verts_ndc)
    return frags.to_image(values).permute(0, 2, 3, 1)
