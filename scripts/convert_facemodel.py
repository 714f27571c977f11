"""Build resources/facemodel/ from the ICT FaceKit (MIT) in ../shared/data/ict-facekit.

Keeps the narrow face area (vertices 0-6705: no ears, neck, eyes, teeth, mouth socket, lashes),
decimates it symmetrically to a few thousand vertices (farthest-point sampling over mirror
pairs, the 68 landmark vertices always kept), re-triangulates in UV space (the face area is
one seamless UV chart, so a 2D Delaunay of the kept vertices' UVs is a valid mesh once the
triangles over the eye and mouth holes are dropped), and stores the mean shape, identity
and fitting-expression bases, UVs, landmarks and the left-right symmetry map in one .npz.

Landmarks: the ICT ``idx_to_landmark_verts`` seed the decimation (so the mesh does not depend on
any calibration) and are stored as ``landmarks_ict``; ``landmarks`` are the vertices re-anchored
to the detector's convention by scripts/calibrate_landmarks.py, read from
resources/facemodel/landmarks_calibrated.json when it is there (else the ICT ones).

Usage: python scripts/convert_facemodel.py [--src ../shared/data/ict-facekit] [--out resources/facemodel]
       [--calibrated FILE | --ict-landmarks]
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
from scipy.spatial import Delaunay, cKDTree

FACE_VERTS = 6706  # vertices 0..6705: the narrow face area (forehead to chin, no ears or neck)
FACE_POLYS = 6560  # polygons 0..6559
N_IDENTITY = 80
TARGET_VERTS = 2500
UV_MARGIN = 0.01
UV_MASK_RES = 2048


def read_obj(path: Path):
    """Positions, texture coordinates and polygons (vertex index, uv index) of an OBJ."""
    positions, texcoords, polygons = [], [], []
    with open(path) as handle:
        for line in handle:
            if line.startswith("v "):
                positions.append([float(x) for x in line.split()[1:4]])
            elif line.startswith("vt "):
                texcoords.append([float(x) for x in line.split()[1:3]])
            elif line.startswith("f "):
                corners = [c.split("/") for c in line.split()[1:]]
                polygons.append([(int(c[0]) - 1, int(c[1]) - 1) for c in corners])
    return np.array(positions), np.array(texcoords), polygons


def face_area_uv(texcoords, polygons) -> np.ndarray:
    """One UV per face-area vertex (the chart has no seams; duplicates share coordinates)."""
    uv = np.full((FACE_VERTS, 2), np.nan)
    for poly in polygons[:FACE_POLYS]:
        for vert, tex in poly:
            uv[vert] = texcoords[tex]
    assert not np.isnan(uv).any(), "face area vertex without UV"
    return uv


def fill_unit_square(uv: np.ndarray) -> np.ndarray:
    """Stretch the chart to fill [0, 1]² (less a margin), keeping its mirror axis at u = 0.5."""
    half_u = np.abs(uv[:, 0] - 0.5).max()
    lo_v, hi_v = uv[:, 1].min(), uv[:, 1].max()
    u = (uv[:, 0] - 0.5) / half_u * (0.5 - UV_MARGIN) + 0.5
    v = (uv[:, 1] - lo_v) / (hi_v - lo_v) * (1 - 2 * UV_MARGIN) + UV_MARGIN
    return np.stack([u, v], axis=1)


def face_area_triangles(polygons) -> np.ndarray:
    tris = []
    for poly in polygons[:FACE_POLYS]:
        idx = [v for v, _ in poly]
        tris += [[idx[0], idx[i], idx[i + 1]] for i in range(1, len(idx) - 1)]
    return np.array(tris)


def mirror_index(points: np.ndarray) -> np.ndarray:
    """For each point, the index of its mirror twin (x -> -x)."""
    mirrored = points * np.array([-1.0, 1.0, 1.0])
    _, idx = cKDTree(points).query(mirrored)
    return idx


def symmetric_fps(points: np.ndarray, mirror: np.ndarray, seeds, target: int) -> np.ndarray:
    """Farthest-point sampling that always takes a vertex together with its mirror twin."""
    chosen = set()
    dist = np.full(len(points), np.inf)

    def take(i):
        for j in {int(i), int(mirror[i])}:
            if j not in chosen:
                chosen.add(j)
                np.minimum(dist, np.linalg.norm(points - points[j], axis=1), out=dist)

    for s in seeds:
        take(s)
    while len(chosen) < target:
        take(int(np.argmax(dist)))
    return np.array(sorted(chosen))


def boundary_vertices(tris: np.ndarray) -> np.ndarray:
    edges = np.sort(np.concatenate([tris[:, [0, 1]], tris[:, [1, 2]], tris[:, [2, 0]]]), axis=1)
    uniq, counts = np.unique(edges, axis=0, return_counts=True)
    return np.unique(uniq[counts == 1])


def uv_chart_mask(uv: np.ndarray, tris: np.ndarray) -> np.ndarray:
    """Rasterised coverage of the UV chart (row 0 = v 0)."""
    mask = np.zeros((UV_MASK_RES, UV_MASK_RES), np.uint8)
    pts = np.round(uv * (UV_MASK_RES - 1) * 16).astype(np.int32)
    for tri in tris:
        cv2.fillConvexPoly(mask, pts[tri], 1, lineType=cv2.LINE_8, shift=4)
    return mask.astype(bool)


def inside_chart(mask: np.ndarray, uv_points: np.ndarray) -> np.ndarray:
    px = np.clip(np.round(uv_points * (UV_MASK_RES - 1)).astype(int), 0, UV_MASK_RES - 1)
    return mask[px[..., 1], px[..., 0]]


def triangulate_in_uv(uv_kept: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Delaunay in UV; drop triangles whose interior samples leave the chart (eyes, mouth)."""
    tris = Delaunay(uv_kept).simplices
    corners = uv_kept[tris]  # (F, 3, 2)
    weights = np.array([[1, 1, 1], [2, 2, 1], [2, 1, 2], [1, 2, 2], [4, 1, 1], [1, 4, 1], [1, 1, 4]], float)
    weights /= weights.sum(1, keepdims=True)
    samples = np.einsum("sk,fkc->fsc", weights, corners)
    keep = inside_chart(mask, samples).all(axis=1)
    tris = tris[keep]
    # Counter-clockwise in UV = facing the viewer (u right, v up, +z toward the viewer).
    a, b, c = (uv_kept[tris[:, i]] for i in range(3))
    cross = (b - a)[:, 0] * (c - a)[:, 1] - (b - a)[:, 1] * (c - a)[:, 0]
    tris[cross < 0] = tris[cross < 0][:, [0, 2, 1]]
    return tris


EYE_UV_BOX = (0.01, 0.01, 0.21, 0.06)  # u0, v0, u1, v1 of the left eye's cap: free chart space below the jaw
EYE_BULGE = 0.15  # cm the cap's centre sits in front of the lids' surface (the eyeball is convex)
EYE_SPACING = 0.22  # cm between the cap's interior vertices


def boundary_loops(tris: np.ndarray) -> list[np.ndarray]:
    """The mesh's boundary as closed vertex loops."""
    edges = np.concatenate([tris[:, [0, 1]], tris[:, [1, 2]], tris[:, [2, 0]]])
    keys, counts = np.unique(np.sort(edges, axis=1), axis=0, return_counts=True)
    border = {tuple(e) for e in keys[counts == 1]}
    following = {int(a): int(b) for a, b in edges if (min(a, b), max(a, b)) in border}
    loops, seen = [], set()
    for start in following:
        if start in seen:
            continue
        loop = [start]
        while following[loop[-1]] != start:
            loop.append(following[loop[-1]])
        seen.update(loop)
        loops.append(np.array(loop))
    return loops


def eye_loops(tris: np.ndarray, mean: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The left (x < 0) and right eye holes' boundary loops: the two highest inner holes."""
    inner = sorted(boundary_loops(tris), key=len)[:-1]  # the longest loop is the outer border
    eyes = sorted(inner, key=lambda loop: -mean[loop, 1].mean())[:2]
    left, right = sorted(eyes, key=lambda loop: mean[loop, 0].mean())
    return left, right


def _cap_layout(outline: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Interior points and triangles of a closed 2D outline (frontal x, y): a grid, then Delaunay."""
    lo, hi = outline.min(0), outline.max(0)
    grid = np.stack(np.meshgrid(*(np.arange(a, b, EYE_SPACING) for a, b in zip(lo, hi))), -1).reshape(-1, 2)
    contour = outline.astype(np.float32).reshape(-1, 1, 2)
    inside = [cv2.pointPolygonTest(contour, tuple(map(float, p)), True) > EYE_SPACING * 0.4 for p in grid]
    interior = grid[np.array(inside, bool)] if len(grid) else grid
    points = np.concatenate([outline, interior])
    tris = Delaunay(points).simplices
    centres = points[tris].mean(1)
    keep = [cv2.pointPolygonTest(contour, tuple(map(float, c)), False) > 0 for c in centres]
    return interior, tris[np.array(keep, bool)]


def _cap_vertices(loop, blend, bulge, mean, bases) -> tuple[np.ndarray, np.ndarray]:
    """A cap's mean (K, 3) and bases: the lid vertices' own, then the interior blends of them,
    moved forward by ``bulge`` (I,) cm."""
    cap_mean = np.concatenate([mean[loop], blend @ mean[loop]])
    cap_mean[len(loop) :, 2] += bulge
    cap_bases = np.concatenate([bases[:, loop], np.einsum("il,klc->kic", blend, bases[:, loop])], 1)
    return cap_mean, cap_bases


def eye_cap(loop: np.ndarray, mean: np.ndarray, bases: np.ndarray, uv_box) -> dict:
    """A closed eye surface over one eye hole, as new vertices: copies of the lid vertices (own UVs)
    and interior ones that are fixed blends of the lids (so blinks and shapes move them), bulged
    forward a little. Its UVs fill ``uv_box``, free space of the chart."""
    outline = mean[loop, :2]
    interior, tris = _cap_layout(outline)
    dist = np.linalg.norm(interior[:, None] - outline[None], axis=-1)
    blend = 1 / np.maximum(dist, 1e-3) ** 2
    blend /= blend.sum(1, keepdims=True)  # (I, L): Shepard weights of the lid vertices
    bulge = EYE_BULGE * np.sqrt(dist.min(1) / max(dist.min(1).max(), 1e-6))
    cap_mean, cap_bases = _cap_vertices(loop, blend, bulge, mean, bases)
    flat = np.concatenate([outline, interior])
    u0, v0, u1, v1 = uv_box
    lo, hi = flat.min(0), flat.max(0)
    uv = np.array([u0, v0]) + (flat - lo) / (hi - lo) * np.array([u1 - u0, v1 - v0])
    a, b, c = (uv[tris[:, i]] for i in range(3))
    cross = (b - a)[:, 0] * (c - a)[:, 1] - (b - a)[:, 1] * (c - a)[:, 0]
    tris[cross < 0] = tris[cross < 0][:, [0, 2, 1]]  # counter-clockwise in UV, like the face
    layout = {"uv": uv, "tris": tris, "lids": loop, "blend": blend, "bulge": bulge}
    return {"mean": cap_mean, "bases": cap_bases, **layout}


def mirror_cap(cap: dict, twin: np.ndarray, mean: np.ndarray, bases: np.ndarray) -> dict:
    """The other eye's cap: the same layout on the mirror-twin lid vertices, u mirrored."""
    loop = twin[cap["lids"]]
    cap_mean, cap_bases = _cap_vertices(loop, cap["blend"], cap["bulge"], mean, bases)
    uv = cap["uv"] * np.array([-1.0, 1.0]) + np.array([1.0, 0.0])
    return {"mean": cap_mean, "bases": cap_bases, "uv": uv, "tris": cap["tris"][:, [0, 2, 1]], "lids": loop}


def add_eye_caps(model: dict, n_identity: int) -> dict:
    """Close the two eye holes with eye surfaces (new vertices appended; nothing else changes)."""
    mean = model["mean"].astype(np.float64)
    bases = np.concatenate([model["identity_basis"], model["expression_basis"]]).astype(np.float64)
    sym = model["symmetry"]
    left_loop, _ = eye_loops(model["faces"], mean)
    left = eye_cap(left_loop, mean, bases, EYE_UV_BOX)
    right = mirror_cap(left, sym, mean, bases)
    n, k = len(mean), len(left["mean"])
    new_bases = np.concatenate([bases, left["bases"], right["bases"]], 1)
    out = dict(model)
    out["mean"] = np.concatenate([mean, left["mean"], right["mean"]]).astype(np.float32)
    out["identity_basis"] = new_bases[:n_identity].astype(np.float16)
    out["expression_basis"] = new_bases[n_identity:].astype(np.float16)
    out["uvs"] = np.concatenate([model["uvs"], left["uv"], right["uv"]]).astype(np.float32)
    out["faces"] = np.concatenate([model["faces"], left["tris"] + n, right["tris"] + n + k]).astype(np.int32)
    out["symmetry"] = np.concatenate([sym, np.arange(k) + n + k, np.arange(k) + n]).astype(np.int32)
    source = model["source_index"]
    lids = lambda cap: np.concatenate([source[cap["lids"]], -np.ones(k - len(cap["lids"]), int)])  # noqa: E731
    out["source_index"] = np.concatenate([source, lids(left), lids(right)]).astype(np.int32)
    out["eye_cap_vertices"] = np.arange(n, n + 2 * k, dtype=np.int32)
    return out


CALIBRATED = Path(__file__).resolve().parent.parent / "resources/facemodel/landmarks_calibrated.json"


def calibrated_landmarks(path: Path, ict: np.ndarray) -> np.ndarray | None:
    """The 68 calibrated ICT vertex indices of scripts/calibrate_landmarks.py, or None if no file."""
    if not path.is_file():
        return None
    record = json.loads(path.read_text())
    landmarks = np.array(record["landmarks"], int)
    if landmarks.shape != (68,):
        raise ValueError(f"{path}: expected 68 landmark vertex indices, got shape {landmarks.shape}")
    if "landmarks_ict" in record and not np.array_equal(record["landmarks_ict"], ict):
        raise ValueError(f"{path} was calibrated from other ICT landmarks than this source's")
    return landmarks


def convert(src: Path, out: Path, target: int = TARGET_VERTS, calibrated: Path | None = CALIBRATED) -> dict:
    """Build out/facemodel.npz. ``calibrated``: the landmark JSON of scripts/calibrate_landmarks.py
    (default: the committed one; None or a missing file: the ICT landmarks)."""
    positions, texcoords, polygons = read_obj(src / "generic_neutral_mesh.obj")
    modes = np.load(src / "shape_modes.npz")
    indices = json.loads((src / "vertex_indices.json").read_text())

    neutral = modes["neutral"][:FACE_VERTS].astype(np.float64)
    uv = fill_unit_square(face_area_uv(texcoords, polygons))
    dense_tris = face_area_triangles(polygons)
    mirror = mirror_index(neutral)

    landmarks_ict = np.array(indices["idx_to_landmark_verts"])
    landmarks = calibrated_landmarks(calibrated, landmarks_ict) if calibrated else None
    if landmarks is None:
        landmarks = landmarks_ict
    seeds = np.concatenate([landmarks_ict, boundary_vertices(dense_tris)[::3]])
    kept = symmetric_fps(neutral, mirror, seeds, target)
    remap = -np.ones(FACE_VERTS, int)
    remap[kept] = np.arange(len(kept))

    tris = triangulate_in_uv(uv[kept], uv_chart_mask(uv, dense_tris))
    centre = neutral[kept].mean(axis=0) * np.array([0.0, 1.0, 1.0])

    names = list(modes["expression_names"])
    fitting = [names.index(n) for n in indices["fitting_expressions"]]
    model = {
        "mean": (neutral[kept] - centre).astype(np.float32),
        "identity_basis": modes["identity_deltas"][:N_IDENTITY][:, kept].astype(np.float16),
        "expression_basis": modes["expression_deltas"][fitting][:, kept].astype(np.float16),
        "expression_names": np.array([names[i] for i in fitting]),
        "faces": tris.astype(np.int32),
        "uvs": uv[kept].astype(np.float32),
        "landmarks": remap[landmarks].astype(np.int32),
        "landmarks_ict": remap[landmarks_ict].astype(np.int32),
        "symmetry": remap[mirror[kept]].astype(np.int32),
        "source_index": kept.astype(np.int32),
    }
    if (model["landmarks"] < 0).any():  # only if the decimation changed since the calibration
        raise ValueError(
            f"{calibrated}: calibrated landmark vertices missing from the decimated mesh "
            "(re-run scripts/calibrate_landmarks.py on this model)"
        )
    assert (model["landmarks_ict"] >= 0).all() and (model["symmetry"] >= 0).all()
    model = add_eye_caps(model, N_IDENTITY)
    out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out / "facemodel.npz", **model)
    shutil.copy(src / "LICENSE", out / "LICENSE-ICT-FaceKit.txt")
    return model


def main() -> None:
    here = Path(__file__).resolve().parent.parent
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=Path, default=here.parent / "shared/data/ict-facekit")
    parser.add_argument("--out", type=Path, default=here / "resources/facemodel")
    parser.add_argument("--vertices", type=int, default=TARGET_VERTS)
    parser.add_argument("--calibrated", type=Path, default=CALIBRATED, help="calibrated landmark JSON")
    parser.add_argument("--ict-landmarks", action="store_true", help="ICT landmarks, no calibration")
    args = parser.parse_args()
    model = convert(args.src, args.out, args.vertices, None if args.ict_landmarks else args.calibrated)
    size = (args.out / "facemodel.npz").stat().st_size / 1e6
    print(
        f"wrote {args.out}/facemodel.npz: {len(model['mean'])} vertices, "
        f"{len(model['faces'])} triangles, {size:.1f} MB"
    )


if __name__ == "__main__":
    main()
