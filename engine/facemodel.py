"""The 3D morphable face model: mean shape, identity and expression bases, UVs, landmarks, symmetry."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from engine.camera import euler_to_matrix
from engine.contour import N_JAW, JawLines, build_jaw_lines, outward_in_view, select_jaw
from engine.resources import resource_path

DEFAULT_PATH = "facemodel/facemodel.npz"
DENSE_NAME = "dense_landmarks.npz"  # beside the model: the 468 Face Mesh points on its surface


class FaceModel:
    """Linear face model on a fixed mesh: ``mean + identity_basis·α + expression_basis·β``.

    Identity weights are ~N(0, 1) (the ICT modes are pre-scaled); expression weights are
    blendshape weights in [0, 1]. Units are centimetres (see docs/conventions.md).
    """

    def __init__(self, arrays: dict, device: torch.device | str = "cpu"):
        as_float = lambda key: torch.as_tensor(arrays[key].astype(np.float32), device=device)  # noqa: E731
        as_long = lambda key: torch.as_tensor(arrays[key].astype(np.int64), device=device)  # noqa: E731
        self.mean = as_float("mean")
        self.identity_basis = as_float("identity_basis")
        self.expression_basis = as_float("expression_basis")
        self.faces = as_long("faces")
        self.uvs = as_float("uvs")
        # the detector's convention (scripts/calibrate_landmarks.py); the ICT model's own in landmarks_ict
        self.landmarks = as_long("landmarks")
        self.landmarks_ict = as_long("landmarks_ict" if "landmarks_ict" in arrays else "landmarks")
        self.symmetry = as_long("symmetry")
        # the closed eye surfaces' vertices (scripts/convert_facemodel.py), after the skin's
        self.eye_vertices = as_long("eye_cap_vertices") if "eye_cap_vertices" in arrays else self.symmetry[:0]
        self.expression_names = [str(n) for n in arrays["expression_names"]]
        self.dense_triangles = as_long("dense_triangles") if "dense_triangles" in arrays else None
        self.dense_barycentric = as_float("dense_barycentric") if "dense_triangles" in arrays else None
        self.dense_weights = as_float("dense_weights") if "dense_triangles" in arrays else None
        self.jaw_lines = self._jaw_lines(arrays, device)
        self._arrays = arrays
        self._flat_id = self.identity_basis.reshape(self.n_identity, -1)
        self._flat_exp = self.expression_basis.reshape(self.n_expression, -1)

    @classmethod
    def load(cls, path: str | Path | None = None, device: torch.device | str = "cpu") -> FaceModel:
        path = Path(path) if path else resource_path(DEFAULT_PATH)
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
        dense = path.with_name(DENSE_NAME)  # scripts/register_face_mesh.py
        if "dense_triangles" not in arrays and dense.is_file():
            with np.load(dense, allow_pickle=False) as data:
                arrays.update({f"dense_{key}": data[key] for key in ("triangles", "barycentric", "weights")})
        return cls(arrays, device)

    def to(self, device: torch.device | str) -> FaceModel:
        return FaceModel(self._arrays, device)

    @property
    def device(self) -> torch.device:
        return self.mean.device

    @property
    def n_vertices(self) -> int:
        return self.mean.shape[0]

    @property
    def n_identity(self) -> int:
        return self.identity_basis.shape[0]

    @property
    def n_expression(self) -> int:
        return self.expression_basis.shape[0]

    def vertices(self, identity: torch.Tensor, expression: torch.Tensor) -> torch.Tensor:
        """(B, n_identity), (B, n_expression) -> (B, V, 3) model-space vertices."""
        offsets = identity @ self._flat_id + expression @ self._flat_exp
        return self.mean + offsets.reshape(-1, self.n_vertices, 3)

    def _jaw_lines(self, arrays: dict, device) -> JawLines:
        skin = np.ones(len(arrays["mean"]), bool)
        skin[self.eye_vertices.cpu().numpy()] = False
        lines = build_jaw_lines(arrays["mean"], arrays["landmarks"], arrays["symmetry"], skin)
        return lines.to(device)

    def landmark_indices(self, ndc: torch.Tensor, rotation: torch.Tensor | None) -> torch.Tensor:
        """(B, 68) the landmark vertices of (B, V, 3) crop-NDC vertices seen with the (B, 3) Euler
        ``rotation``: the jaw points slide to the visible contour; without a rotation, the fixed ones."""
        if rotation is None:
            return self.landmarks.expand(ndc.shape[0], -1)
        outward = outward_in_view(self.jaw_lines, euler_to_matrix(rotation)) * ndc.new_tensor([1.0, -1.0])
        return self.sliding_indices(ndc[:, self.jaw_lines.vertices, :2], outward)

    def sliding_indices(self, on_lines_xy: torch.Tensor, outward: torch.Tensor) -> torch.Tensor:
        """(B, 68) landmark vertices from the jaw lines' vertices (B, 17, K, 2) and the outward
        directions (B, 17, 2), both in one 2D frame of the view."""
        jaw = select_jaw(self.jaw_lines, on_lines_xy, outward)
        return torch.cat([jaw, self.landmarks[N_JAW:].expand(jaw.shape[0], -1)], 1)

    def landmark_vertices(self, vertices: torch.Tensor, rotation: torch.Tensor | None = None) -> torch.Tensor:
        """(B, V, 3) -> (B, 68, 3); with the view's (B, 3) Euler ``rotation`` the vertices must be in
        crop NDC, and the jaw points slide to the visible contour (:mod:`engine.contour`)."""
        if rotation is None:
            return vertices[:, self.landmarks]
        ids = self.landmark_indices(vertices, rotation)
        return torch.gather(vertices, 1, ids[..., None].expand(-1, -1, vertices.shape[-1]))

    @property
    def has_dense(self) -> bool:
        return self.dense_triangles is not None

    def dense_points(self, vertices: torch.Tensor) -> torch.Tensor:
        """(B, V, 3) -> (B, 468, 3): the Face Mesh points on the surface (barycentric)."""
        assert self.dense_triangles is not None and self.dense_barycentric is not None
        return torch.einsum("bnjc,nj->bnc", vertices[:, self.dense_triangles], self.dense_barycentric)

    def mirror(self, vertices: torch.Tensor) -> torch.Tensor:
        """The mirror image of a shape (x -> -x, then each vertex takes its twin's place)."""
        flipped = vertices * vertices.new_tensor([-1.0, 1.0, 1.0])
        return flipped[:, self.symmetry]
