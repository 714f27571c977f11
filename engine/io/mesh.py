"""Writers for a reconstruction: OBJ+MTL+PNG, PLY, GLB meshes and PNG maps. Every write is atomic."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import trimesh
from PIL import Image
from trimesh.exchange.obj import export_obj

from engine.errors import CestError
from engine.io import atomic

MESH_FORMATS = ("obj", "ply", "glb")


@dataclass
class MeshData:
    """A textured triangle mesh: (V, 3) vertices in cm, (F, 3) faces, (V, 2) UVs, (T, T, 3) uint8 albedo."""

    vertices: np.ndarray
    faces: np.ndarray
    uvs: np.ndarray
    texture: np.ndarray

    def trimesh(self) -> trimesh.Trimesh:
        material = trimesh.visual.material.SimpleMaterial(
            image=Image.fromarray(self.texture),
            name="face_albedo",
            diffuse=(255, 255, 255, 255),
            ambient=(255, 255, 255, 255),
            specular=(0, 0, 0, 255),
        )
        mesh = trimesh.Trimesh(self.vertices, self.faces, process=False)
        mesh.visual = trimesh.visual.TextureVisuals(uv=self.uvs, material=material)
        return mesh

    def vertex_colors(self) -> np.ndarray:
        """(V, 4) uint8 albedo sampled at each vertex's UV (nearest texel)."""
        size = self.texture.shape[0]
        col = np.clip(np.round(self.uvs[:, 0] * size - 0.5), 0, size - 1).astype(int)
        row = np.clip(np.round((1 - self.uvs[:, 1]) * size - 0.5), 0, size - 1).astype(int)
        rgb = self.texture[row, col]
        return np.concatenate([rgb, np.full((len(rgb), 1), 255, np.uint8)], 1)


def write_obj(mesh: MeshData, path: str | Path) -> list[Path]:
    """``NAME.obj`` + ``NAME.mtl`` + ``NAME_albedo.png`` (opens textured in Blender and MeshLab)."""
    path = Path(path)
    tm = mesh.trimesh()
    tm.visual.material.name = f"{path.stem}_albedo"
    text, files = export_obj(
        tm, include_texture=True, include_normals=True, mtl_name=f"{path.stem}.mtl", return_texture=True
    )
    written = []
    for name, data in files.items():
        atomic.write_bytes(path.parent / name, data)
        written.append(path.parent / name)
    atomic.write_text(path, text)
    return [path, *written]


def write_ply(mesh: MeshData, path: str | Path) -> list[Path]:
    """Binary PLY with per-vertex albedo colours."""
    tm = trimesh.Trimesh(mesh.vertices, mesh.faces, vertex_colors=mesh.vertex_colors(), process=False)
    atomic.write_bytes(path, trimesh.exchange.ply.export_ply(tm, encoding="binary"))
    return [Path(path)]


def write_glb(mesh: MeshData, path: str | Path) -> list[Path]:
    """Binary glTF with the albedo as its base-colour texture."""
    atomic.write_bytes(path, mesh.trimesh().export(file_type="glb"))
    return [Path(path)]


WRITERS = {"obj": write_obj, "ply": write_ply, "glb": write_glb}


def write_mesh(mesh: MeshData, path: str | Path, fmt: str | None = None) -> list[Path]:
    fmt = (fmt or Path(path).suffix.lstrip(".")).lower()
    if fmt not in WRITERS:
        raise ValueError(f"unknown mesh format {fmt!r}; choose one of {', '.join(MESH_FORMATS)}")
    return WRITERS[fmt](mesh, path)


def write_png(image: np.ndarray, path: str | Path) -> Path:
    """Write an HxW, HxWx3 or HxWx4 uint8 (or uint16 for HxW) array as PNG, atomically."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    atomic.write_bytes(path, buffer.getvalue())
    return Path(path)


def to_json(data, **options) -> str:
    """JSON text; values that are not numbers (NaN, infinity) are an error, never written."""
    try:
        return json.dumps(data, allow_nan=False, **options)
    except ValueError as err:
        raise CestError(
            f"the result holds values that are not numbers (NaN or infinity) and was not written ({err})"
        ) from err


def write_json(data, path: str | Path) -> Path:
    atomic.write_text(path, to_json(data, indent=2))
    return Path(path)
