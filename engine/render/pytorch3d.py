"""Optional rasteriser backend on pytorch3d, behind the same :class:`~engine.render.Fragments`.

Imported only when ``Renderer(backend="pytorch3d")`` is used; the rest of the engine never needs it.
Interpolation, texturing and shading stay those of :mod:`engine.render`.
"""

from __future__ import annotations

import torch
from pytorch3d.renderer.mesh.rasterize_meshes import rasterize_meshes
from pytorch3d.structures import Meshes
from torch import Tensor

from engine.render import Fragments, front_facing


def _to_pytorch3d_ndc(verts_ndc: Tensor, height: int, width: int) -> Tensor:
    """Crop NDC (x right, y down, z larger = closer) -> pytorch3d NDC (x left, y up, z > 0 farther)."""
    short = min(height, width)
    flip = verts_ndc.new_tensor([-width / short, -height / short, -1.0])
    verts = verts_ndc * flip
    verts[..., 2] += verts_ndc[..., 2].max() + 1
    return verts


@torch.no_grad()
def rasterize(
    verts_ndc: Tensor, faces: Tensor, height: int, width: int, cull_backfaces: bool = True
) -> Fragments:
    """pytorch3d's z-buffer with the conventions of :func:`engine.render.rasterize`."""
    verts = verts_ndc.detach().float()
    n_faces = faces.shape[0]
    keep = front_facing(verts, faces)
    if not cull_backfaces:
        keep = torch.ones_like(keep)
    meshes = Meshes(verts=list(_to_pytorch3d_ndc(verts, height, width)), faces=[faces[k] for k in keep])
    pix_to_face, _, bary, _ = rasterize_meshes(meshes, (height, width), faces_per_pixel=1)
    kept = keep.reshape(-1).nonzero().squeeze(1)  # packed face -> b * F + f
    pix_to_face = pix_to_face[..., 0]
    face_index = torch.where(pix_to_face >= 0, kept[pix_to_face.clamp_min(0)] % n_faces, -1)
    return Fragments.from_dense(face_index, bary[..., 0, :])
