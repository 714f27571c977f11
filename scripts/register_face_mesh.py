"""Place MediaPipe's 468 Face Mesh points on the face model's surface (the dense landmarks).

MediaPipe's canonical face mesh (../shared/data/mediapipe-face-geometry, Apache-2.0) is the
neutral face its Face Mesh network predicts, in centimetres. Registering it once to our model
gives every detected point a fixed place on our mesh (a triangle and barycentric weights), so the
landmark fit and the training landmark loss can use all 468 points, not only the 68.

Method (deterministic, seconds):
1. Similarity alignment of the canonical mesh to the model's mean on the inner 51 iBUG points
   (their Face Mesh indices from engine.detect.ibug68, the model's calibrated landmark vertices).
2. Non-rigid ICP in the model's own shape space: alternately take, for each canonical point, the
   closest point on the model's surface, and re-fit the model's identity (ridge prior) and the
   similarity so those surface points meet the canonical ones. The face model deforms, never the
   correspondences' topology: the result is a (triangle, barycentric) per point on our mesh.
3. A point is kept (weight 1) when its surface point is inside the model's face area (not on the
   outer border, where the canonical mesh reaches past ours) and within ``--max-distance`` cm;
   the face oval, which MediaPipe places on a 3D contour, gets ``--oval-weight``.

Writes resources/facemodel/dense_landmarks.npz: ``triangles`` (468, 3) vertex indices,
``barycentric`` (468, 3), ``weights`` (468,), ``distance`` (468,) cm after registration.

Usage: python scripts/register_face_mesh.py [--src ../shared/data/mediapipe-face-geometry]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from engine.detect.ibug68 import MESH_TO_IBUG68  # noqa: E402
from engine.facemodel import FaceModel  # noqa: E402

OUT = ROOT / "resources" / "facemodel" / "dense_landmarks.npz"
# MediaPipe's face oval (FACEMESH_FACE_OVAL): a 3D contour, not the silhouette a turned face shows.
FACE_OVAL = (
    10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
    152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109,
)  # fmt: skip


def read_canonical(folder: Path) -> np.ndarray:
    lines = (folder / "canonical_face_model.obj").read_text().splitlines()
    return np.array([[float(x) for x in line.split()[1:4]] for line in lines if line.startswith("v ")])


def similarity(src: np.ndarray, dst: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """Scale, rotation, shift with scale * src @ R.T + shift ~ dst (Umeyama)."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    a, b = src - mu_s, dst - mu_d
    u, sing, vt = np.linalg.svd(b.T @ a)
    fix = np.diag([1.0, 1.0, np.sign(np.linalg.det(u @ vt))])
    rot = u @ fix @ vt
    scale = float((sing * np.diag(fix)).sum() / (a**2).sum())
    return scale, rot, mu_d - scale * mu_s @ rot.T


def ibug_points(canonical: np.ndarray) -> np.ndarray:
    return np.array([canonical[list(idx)].mean(0) for idx in MESH_TO_IBUG68])


def closest_on_triangles(points: np.ndarray, corners: np.ndarray) -> np.ndarray:
    """(N, 3) points, (F, 3, 3) triangles -> (N, F, 3) barycentrics of the closest points.

    Minimises over the triangle by projecting onto its plane, then onto its edges when the
    projection falls outside (the closest point is then on the nearest edge)."""
    a, b, c = corners[:, 0], corners[:, 1], corners[:, 2]
    ab, ac = b - a, c - a
    ap = points[:, None] - a[None]
    gram = np.stack(
        [np.einsum("fc,fc->f", ab, ab), np.einsum("fc,fc->f", ab, ac), np.einsum("fc,fc->f", ac, ac)]
    )
    d1, d2 = np.einsum("nfc,fc->nf", ap, ab), np.einsum("nfc,fc->nf", ap, ac)
    det = gram[0] * gram[2] - gram[1] ** 2
    v = (gram[2] * d1 - gram[1] * d2) / det
    w = (gram[0] * d2 - gram[1] * d1) / det
    bary = np.stack([1 - v - w, v, w], -1)
    outside = (bary < 0).any(-1)
    if outside.any():
        best = np.full(outside.shape, np.inf)
        edge_bary = np.zeros(bary.shape)
        for i, j in ((0, 1), (1, 2), (2, 0)):
            p0, p1 = corners[:, i], corners[:, j]
            seg = p1 - p0
            t = np.clip(
                np.einsum("nfc,fc->nf", points[:, None] - p0, seg) / np.einsum("fc,fc->f", seg, seg), 0, 1
            )
            dist = np.linalg.norm(points[:, None] - (p0 + t[..., None] * seg), axis=-1)
            better = dist < best
            best = np.where(better, dist, best)
            cand = np.zeros(bary.shape)
            cand[..., i], cand[..., j] = 1 - t, t
            edge_bary = np.where(better[..., None], cand, edge_bary)
        bary = np.where(outside[..., None], edge_bary, bary)
    return bary


def closest_on_surface(vertices: np.ndarray, faces: np.ndarray, points: np.ndarray):
    """Per point: the closest triangle's index, barycentrics of the closest point, distance."""
    corners = vertices[faces]
    bary = closest_on_triangles(points, corners)  # (N, F, 3)
    closest = np.einsum("nfj,fjc->nfc", bary, corners)
    dist = np.linalg.norm(closest - points[:, None], axis=-1)
    tri = dist.argmin(1)
    rows = np.arange(len(points))
    return tri, bary[rows, tri], dist[rows, tri]


def skin_faces(model: FaceModel) -> np.ndarray:
    """The triangles of the face's skin: the eye surfaces left out (the lids are what Face Mesh marks)."""
    faces = model.faces.numpy()
    return faces[~np.isin(faces, model.eye_vertices.numpy()).any(1)]


def fit_identity(model: FaceModel, basis, tris, bary, target, lm_target, prior: float) -> np.ndarray:
    """Ridge fit of the identity (``basis`` (K, V, 3)) so the barycentric surface points and the 68
    meet the targets."""
    mean = model.mean.double().numpy()
    lm = model.landmarks.numpy()
    at_points = np.einsum("nj,knjc->knc", bary, basis[:, tris])  # (K, N, 3)
    design = np.concatenate([at_points, basis[:, lm]], 1).reshape(basis.shape[0], -1).T
    start = np.concatenate([np.einsum("nj,njc->nc", bary, mean[tris]), mean[lm]])
    residual = (np.concatenate([target, lm_target]) - start).reshape(-1)
    lhs = torch.as_tensor(design.T @ design + prior * np.eye(design.shape[1]))
    return torch.linalg.solve(lhs, torch.as_tensor(design.T @ residual)).numpy()


def register(model: FaceModel, canonical: np.ndarray, iterations: int, prior: float):
    faces = skin_faces(model)
    inner = slice(17, 68)
    mean = model.mean.double().numpy()
    basis = model.identity_basis.double().numpy()
    identity = np.zeros(model.n_identity)
    for _ in range(iterations):
        verts = mean + np.einsum("k,kvc->vc", identity, basis)
        scale, rot, shift = similarity(ibug_points(canonical)[inner], verts[model.landmarks.numpy()][inner])
        target = scale * canonical @ rot.T + shift
        tris, bary, distance = closest_on_surface(verts, faces, target)
        identity = fit_identity(model, basis, faces[tris], bary, target, ibug_points(target), prior)
    verts = mean + np.einsum("k,kvc->vc", identity, basis)
    tris, bary, distance = closest_on_surface(verts, faces, target)
    return faces[tris], bary, distance


def point_weights(model: FaceModel, triangles, distance, max_distance: float, oval_weight: float):
    faces = skin_faces(model)
    edges = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
    uniq, counts = np.unique(edges, axis=0, return_counts=True)
    border = set(np.unique(uniq[counts == 1]).tolist())
    mean = model.mean.numpy()
    outer = {v for v in border if abs(mean[v, 0]) > 5.5 or mean[v, 1] > 6.0 or mean[v, 1] < -7.0}
    weights = np.ones(len(triangles))
    on_outer = np.array([all(int(v) in outer for v in tri[:2]) for tri in triangles])
    weights[on_outer | (distance > max_distance)] = 0.0
    weights[list(FACE_OVAL)] *= oval_weight
    return weights


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, default=ROOT.parent / "shared/data/mediapipe-face-geometry")
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--prior", type=float, default=3.0)
    parser.add_argument("--max-distance", type=float, default=0.5)
    parser.add_argument("--oval-weight", type=float, default=0.5)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    model = FaceModel.load()
    triangles, bary, distance = register(model, read_canonical(args.src), args.iterations, args.prior)
    weights = point_weights(model, triangles, distance, args.max_distance, args.oval_weight)
    np.savez_compressed(
        args.out,
        triangles=triangles.astype(np.int32),
        barycentric=bary.astype(np.float32),
        weights=weights.astype(np.float32),
        distance=distance.astype(np.float32),
    )
    kept = weights > 0
    print(
        f"{args.out}: {kept.sum()} of {len(weights)} points kept; distance median "
        f"{np.median(distance[kept]):.3f} cm, 95% {np.percentile(distance[kept], 95):.3f} cm"
    )


if __name__ == "__main__":
    main()
