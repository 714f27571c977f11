"""The self-test's step 4: exported files read back and checked (vertex and triangle counts
against the face model, PNG sizes, the GLB header, finite coordinates, params.json's method).
Plain Python, numpy and PIL: no Qt, no engine."""

from __future__ import annotations

import json
import struct
from pathlib import Path


class SelftestError(Exception):
    """A check that did not hold (the message says which and why)."""


def png_size(path: Path) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as image:
        image.load()  # decodes the whole file: a truncated PNG fails here
        return image.size


def _nonempty(path: Path) -> Path:
    if not path.is_file():
        raise SelftestError(f"{path.name} was not written")
    if path.stat().st_size == 0:
        raise SelftestError(f"{path.name} is empty")
    return path


def verify_obj(obj: Path, n_vertices: int, n_faces: int) -> None:
    import numpy as np

    verts, faces, uvs, mtllib = [], 0, 0, None
    for line in _nonempty(obj).read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("v "):
            verts.append([float(x) for x in line.split()[1:4]])
        elif line.startswith("vt "):
            uvs += 1
        elif line.startswith("f "):
            faces += 1
        elif line.startswith("mtllib "):
            mtllib = line.split(maxsplit=1)[1].strip()
    if len(verts) != n_vertices or faces != n_faces:
        raise SelftestError(
            f"{obj.name}: {len(verts)} vertices / {faces} triangles, expected {n_vertices} / {n_faces}"
        )
    if uvs == 0:
        raise SelftestError(f"{obj.name} has no texture coordinates")
    points = np.asarray(verts)
    if not np.isfinite(points).all():
        raise SelftestError(f"{obj.name} has non-finite coordinates")
    extent = points.max(0) - points.min(0)
    if (extent < 1e-3).any():
        raise SelftestError(f"{obj.name} is flat or collapsed (extent {extent.round(3).tolist()})")
    if not mtllib:
        raise SelftestError(f"{obj.name} names no material library")
    mtl = _nonempty(obj.parent / mtllib)
    textures = [
        line.split(maxsplit=1)[1].strip()
        for line in mtl.read_text(encoding="utf-8").splitlines()
        if line.strip().startswith("map_Kd ")
    ]
    if not textures:
        raise SelftestError(f"{mtl.name} names no texture (map_Kd)")
    width, height = png_size(_nonempty(obj.parent / textures[0]))
    if width < 16 or height < 16:
        raise SelftestError(f"{textures[0]} is only {width}x{height}")


def verify_ply(ply: Path, n_vertices: int, n_faces: int) -> None:
    header = _nonempty(ply).read_bytes()[:2048]
    if not header.startswith(b"ply"):
        raise SelftestError(f"{ply.name} is not a PLY file")
    text = header.split(b"end_header")[0].decode("ascii", "replace")
    counts = {
        parts[1]: int(parts[2])
        for parts in (line.split() for line in text.splitlines())
        if len(parts) == 3 and parts[0] == "element"
    }
    if counts.get("vertex") != n_vertices or counts.get("face") != n_faces:
        raise SelftestError(
            f"{ply.name}: elements {counts}, expected {n_vertices} vertices / {n_faces} faces"
        )


def verify_glb(glb: Path, n_vertices: int) -> None:
    data = _nonempty(glb).read_bytes()
    if len(data) < 20 or data[:4] != b"glTF":
        raise SelftestError(f"{glb.name} is not a binary glTF file")
    version, length = struct.unpack("<II", data[4:12])
    if version != 2 or length != len(data):
        raise SelftestError(
            f"{glb.name}: glTF version {version}, length {length} for a {len(data)}-byte file"
        )
    chunk_length, chunk_type = struct.unpack("<II", data[12:20])
    gltf = json.loads(data[20 : 20 + chunk_length].decode("utf-8"))
    if chunk_type != 0x4E4F534A or not gltf.get("meshes"):
        raise SelftestError(f"{glb.name} holds no mesh")
    position = gltf["meshes"][0]["primitives"][0]["attributes"]["POSITION"]
    count = gltf["accessors"][position]["count"]
    if count != n_vertices:
        raise SelftestError(f"{glb.name}: {count} vertices, expected {n_vertices}")
    if not gltf.get("images"):
        raise SelftestError(f"{glb.name} has no texture")


def verify(out: Path, reconstructor, recon, prefix: str = "face", maps: bool = True) -> dict:
    n_vertices = int(reconstructor.model.n_vertices)
    n_faces = int(reconstructor.model.faces.shape[0])
    verify_obj(out / f"{prefix}.obj", n_vertices, n_faces)
    verify_ply(out / f"{prefix}.ply", n_vertices, n_faces)
    verify_glb(out / f"{prefix}.glb", n_vertices)
    if maps:
        for name in ("depth", "normals", "albedo", "shading", "preview"):
            png_size(_nonempty(out / f"{name}.png"))
        params = json.loads(_nonempty(out / "params.json").read_text(encoding="utf-8"))
        if params.get("method") != recon.method:
            raise SelftestError(
                f"params.json says method {params.get('method')!r}, expected {recon.method!r}"
            )
        if len(params.get("landmarks_68_xy", [])) != 68:
            raise SelftestError("params.json does not hold 68 landmarks")
    return {"vertices": n_vertices, "triangles": n_faces}
