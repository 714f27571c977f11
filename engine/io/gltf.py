"""An animated head as binary glTF 2.0: one textured mesh, morph targets, one animation.

The mesh is the neutral face (metres; glTF's axes are the face model's: +y up, +z toward the
viewer), with its albedo as the base-colour texture and one morph target per expression (the
vertex offsets of its blendshape), named in ``mesh.extras.targetNames`` as Blender's importer and
three.js read them. The animation drives the node: morph ``weights``, ``rotation`` and
``translation``, linearly interpolated (rotations spherically), times in seconds.
"""

from __future__ import annotations

import io
import json
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from engine.io import atomic

FLOAT, UINT32 = 5126, 5125
ARRAY_BUFFER, ELEMENT_ARRAY_BUFFER = 34962, 34963


@dataclass
class HeadAnimation:
    """What the file holds: the neutral mesh, its blendshapes and the keyframes."""

    vertices: np.ndarray  # (V, 3) metres
    faces: np.ndarray  # (F, 3)
    uvs: np.ndarray  # (V, 2), v = 0 at the bottom (OBJ convention)
    texture: np.ndarray  # (T, T, 3) uint8
    targets: np.ndarray  # (E, V, 3) metres, offsets from the neutral mesh
    target_names: list[str]
    times: np.ndarray  # (K,) seconds
    weights: np.ndarray  # (K, E) in [0, 1]
    rotations: np.ndarray  # (K, 4) quaternions x, y, z, w
    translations: np.ndarray  # (K, 3) metres


class _Builder:
    """Accumulates buffer views and accessors of one binary buffer."""

    def __init__(self):
        self.blob = bytearray()
        self.views: list[dict] = []
        self.accessors: list[dict] = []

    def view(self, data: bytes, target: int | None = None) -> int:
        self.blob += b"\0" * (-len(self.blob) % 4)
        view = {"buffer": 0, "byteOffset": len(self.blob), "byteLength": len(data)}
        if target is not None:
            view["target"] = target
        self.blob += data
        self.views.append(view)
        return len(self.views) - 1

    def accessor(self, array: np.ndarray, kind: str, target: int | None = None, bounds: bool = False) -> int:
        component = UINT32 if array.dtype.kind in "ui" else FLOAT
        array = np.ascontiguousarray(array, np.uint32 if component == UINT32 else np.float32)
        rows = array.reshape(len(array), -1)
        accessor = {
            "bufferView": self.view(array.tobytes(), target),
            "componentType": component,
            "count": len(rows),
            "type": kind,
        }
        if bounds:
            accessor["min"], accessor["max"] = rows.min(0).tolist(), rows.max(0).tolist()
        self.accessors.append(accessor)
        return len(self.accessors) - 1


def _png(texture: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(texture).save(buffer, format="PNG")
    return buffer.getvalue()


def _normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    tri = vertices[faces]
    face_normals = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normals = np.zeros_like(vertices)
    for corner in range(3):
        np.add.at(normals, faces[:, corner], face_normals)
    return normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)


def _mesh(b: _Builder, head: HeadAnimation) -> dict:
    uv = np.stack([head.uvs[:, 0], 1 - head.uvs[:, 1]], 1)  # glTF's v runs down the image
    attributes = {
        "POSITION": b.accessor(head.vertices, "VEC3", ARRAY_BUFFER, bounds=True),
        "NORMAL": b.accessor(_normals(head.vertices, head.faces), "VEC3", ARRAY_BUFFER),
        "TEXCOORD_0": b.accessor(uv, "VEC2", ARRAY_BUFFER),
    }
    targets = [{"POSITION": b.accessor(t, "VEC3", ARRAY_BUFFER, bounds=True)} for t in head.targets]
    primitive = {
        "attributes": attributes,
        "indices": b.accessor(head.faces.reshape(-1), "SCALAR", ELEMENT_ARRAY_BUFFER),
        "material": 0,
        "targets": targets,
    }
    return {
        "name": "face",
        "primitives": [primitive],
        "weights": [0.0] * len(targets),
        "extras": {"targetNames": list(head.target_names)},
    }


def _animation(b: _Builder, head: HeadAnimation) -> dict:
    times = b.accessor(head.times.astype(np.float64), "SCALAR", bounds=True)
    outputs = {
        "weights": b.accessor(np.clip(head.weights, 0, 1).reshape(-1), "SCALAR"),
        "rotation": b.accessor(head.rotations, "VEC4"),
        "translation": b.accessor(head.translations, "VEC3"),
    }
    samplers = [{"input": times, "output": out, "interpolation": "LINEAR"} for out in outputs.values()]
    channels = [{"sampler": i, "target": {"node": 0, "path": path}} for i, path in enumerate(outputs)]
    return {"name": "performance", "samplers": samplers, "channels": channels}


def glb_bytes(head: HeadAnimation) -> bytes:
    b = _Builder()
    mesh = _mesh(b, head)
    image_view = b.view(_png(head.texture))
    animation = _animation(b, head)
    document = {
        "asset": {"version": "2.0", "generator": "CEST Studio"},
        "scene": 0,
        "scenes": [{"nodes": [0]}],
        "nodes": [{"name": "head", "mesh": 0}],
        "meshes": [mesh],
        "materials": [
            {
                "name": "face_albedo",
                "pbrMetallicRoughness": {
                    "baseColorTexture": {"index": 0},
                    "metallicFactor": 0.0,
                    "roughnessFactor": 0.9,
                },
            }
        ],
        "textures": [{"source": 0, "sampler": 0}],
        "samplers": [{"magFilter": 9729, "minFilter": 9987, "wrapS": 33071, "wrapT": 33071}],
        "images": [{"bufferView": image_view, "mimeType": "image/png"}],
        "animations": [animation],
        "accessors": b.accessors,
        "bufferViews": b.views,
        "buffers": [{"byteLength": len(b.blob)}],
    }
    text = json.dumps(document, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 4)
    blob = bytes(b.blob) + b"\0" * (-len(b.blob) % 4)
    chunks = (
        struct.pack("<II", len(text), 0x4E4F534A) + text + struct.pack("<II", len(blob), 0x004E4942) + blob
    )
    return struct.pack("<III", 0x46546C67, 2, 12 + len(chunks)) + chunks


def write_glb(head: HeadAnimation, path: str | Path) -> Path:
    atomic.write_bytes(path, glb_bytes(head))
    return Path(path)


def matrix_to_quaternion(matrices: np.ndarray) -> np.ndarray:
    """(N, 3, 3) rotations -> (N, 4) unit quaternions x, y, z, w (w >= 0, neighbours on one side)."""
    out = np.empty((len(matrices), 4))
    for i, m in enumerate(np.asarray(matrices, np.float64)):
        w = np.sqrt(max(0.0, 1 + m[0, 0] + m[1, 1] + m[2, 2])) / 2
        x = np.copysign(np.sqrt(max(0.0, 1 + m[0, 0] - m[1, 1] - m[2, 2])) / 2, m[2, 1] - m[1, 2])
        y = np.copysign(np.sqrt(max(0.0, 1 - m[0, 0] + m[1, 1] - m[2, 2])) / 2, m[0, 2] - m[2, 0])
        z = np.copysign(np.sqrt(max(0.0, 1 - m[0, 0] - m[1, 1] + m[2, 2])) / 2, m[1, 0] - m[0, 1])
        q = np.array([x, y, z, w])
        q /= np.linalg.norm(q)
        if i and np.dot(q, out[i - 1]) < 0:
            q = -q  # the short way round between keyframes
        out[i] = q
    return out
