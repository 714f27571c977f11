"""68 iBUG points from the 468-point Face Mesh: a learned linear map, then a cascade on the pixels.

Stage 0 maps the whole mesh (x, y and relative depth, in a frame normalised by the eyes' line and
the mesh's size) to the 68 points by ridge regression: it learns where an annotator puts each
point from all 468, not from one or two fixed vertices (the jaw of a turned face especially).
Then a supervised descent cascade (Xiong & De la Torre, CVPR 2013) refines the points: HOG
descriptors around each point, in a face canvas aligned to the mean shape, regress the update
linearly, coarse to fine. Everything is fitted in closed form (ridge) by
``scripts/train_landmark_refiner.py`` on the 300-W annotations (see resources/detect/README.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

CANVAS = 160  # default side of the face canvas the cascade reads its descriptors from
MEAN_HALF_EXTENT = 0.36  # the mean shape spans +-0.36 of the canvas around its centre


def mesh_frame(mesh: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """(468, 3) mesh in pixels -> centre (2,), rotation (2, 2) of the eye line, size (RMS radius)."""
    centre = mesh[:, :2].mean(0)
    eye = mesh[263, :2] - mesh[33, :2]
    a = float(np.arctan2(eye[1], eye[0]))
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    local = (mesh[:, :2] - centre) @ rot
    return centre, rot, float(np.sqrt((local**2).sum(1).mean()))


def mesh_features(mesh: np.ndarray) -> np.ndarray:
    """(468, 3) -> (1405,) normalised x, y, depth and a bias term (the linear map's input)."""
    centre, rot, size = mesh_frame(mesh)
    xy = (mesh[:, :2] - centre) @ rot
    z = mesh[:, 2:] - mesh[:, 2:].mean()
    return np.append(np.hstack([xy, z]).ravel() / size, 1.0)


def from_mesh_frame(points: np.ndarray, mesh: np.ndarray) -> np.ndarray:
    """(68, 2) points in the mesh's normalised frame -> pixels."""
    centre, rot, size = mesh_frame(mesh)
    return points * size @ rot.T + centre


def to_mesh_frame(points: np.ndarray, mesh: np.ndarray) -> np.ndarray:
    centre, rot, size = mesh_frame(mesh)
    return (points - centre) @ rot / size


def similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2x3 similarity (rotation, scale, shift) taking src (N, 2) closest to dst (N, 2)."""
    sc, dc = src.mean(0), dst.mean(0)
    s, t = src - sc, dst - dc
    norm = (s**2).sum()
    a = (s * t).sum() / norm
    b = (s[:, 0] * t[:, 1] - s[:, 1] * t[:, 0]).sum() / norm
    m = np.array([[a, -b], [b, a]])
    return np.hstack([m, (dc - m @ sc)[:, None]])


def canvas_side(mean: np.ndarray) -> int:
    return int(round(2 * float(mean.mean(0).mean())))


def _hog(window: int) -> cv2.HOGDescriptor:
    cell = window // 4
    return cv2.HOGDescriptor((window, window), (2 * cell, 2 * cell), (cell, cell), (cell, cell), 9)


def canvas_gray(image: np.ndarray, to_canvas: np.ndarray, pad: int, canvas: int) -> np.ndarray:
    """The face warped into the canvas (gray, padded by `pad` on each side)."""
    shifted = to_canvas.copy()
    shifted[:, 2] += pad
    side = canvas + 2 * pad
    warped = cv2.warpAffine(
        image, shifted, (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    return cv2.cvtColor(warped, cv2.COLOR_RGB2GRAY) if warped.ndim == 3 else warped


def descriptors(image: np.ndarray, points: np.ndarray, mean: np.ndarray, window: int):
    """HOG around each point in the canvas -> (features (68*D,), image->canvas 2x3, points in canvas).
    The canvas side is implied by the mean shape, which spans MEAN_HALF_EXTENT of it around its centre."""
    canvas = canvas_side(mean)
    to_canvas = similarity(points, mean)
    local = points @ to_canvas[:, :2].T + to_canvas[:, 2]
    gray = canvas_gray(image, to_canvas, window, canvas)
    corners = np.round(local - window / 2).astype(int) + window
    corners = np.clip(corners, 0, canvas + window)
    locations = tuple((int(x), int(y)) for x, y in corners)
    feats = _hog(window).compute(gray, (8, 8), (0, 0), locations).ravel()
    return feats, to_canvas, local


@dataclass
class Stage:
    window: int
    mean_feature: np.ndarray  # (F,)
    weights: np.ndarray  # (F, 136)
    bias: np.ndarray  # (136,)

    def apply(self, image: np.ndarray, points: np.ndarray, mean: np.ndarray) -> np.ndarray:
        feats, to_canvas, local = descriptors(image, points, mean, self.window)
        step = self._regress(feats - self.mean_feature) + self.bias
        moved = local + step.reshape(68, 2)
        return (moved - to_canvas[:, 2]) @ np.linalg.inv(to_canvas[:, :2]).T

    def _regress(self, x: np.ndarray) -> np.ndarray:
        """``x @ weights``, the same sum, as torch's single-threaded matrix-vector product over the
        transposed weights: about 20x faster than numpy's (which reads the 12 MB matrix across its
        rows, on every BLAS thread), the refiner's whole cost on a busy machine."""
        import torch

        transposed = self.__dict__.get("_transposed")
        if transposed is None:  # stored transposed from now on (weights stays a view of it: no copy)
            rows = np.ascontiguousarray(self.weights.T, np.float32)
            self.weights = rows.T
            transposed = self.__dict__["_transposed"] = torch.from_numpy(rows)
        return torch.mv(transposed, torch.from_numpy(np.asarray(x, np.float32))).numpy()


class LandmarkRefiner:
    """Face Mesh (468, 3) + the image -> 68 iBUG points (pixels)."""

    def __init__(self, linear: np.ndarray, mean: np.ndarray, stages: list[Stage]):
        self.linear, self.mean, self.stages = linear, mean, stages

    def initial(self, mesh: np.ndarray) -> np.ndarray:
        """The linear map alone (stage 0)."""
        return from_mesh_frame((mesh_features(mesh) @ self.linear).reshape(68, 2), mesh)

    def __call__(self, image: np.ndarray, mesh: np.ndarray) -> np.ndarray:
        points = self.initial(mesh)
        for stage in self.stages:
            points = stage.apply(image, points, self.mean)
        return points.astype(np.float32)

    def save(self, path: Path) -> None:
        arrays = {"linear": self.linear.astype(np.float32), "mean": self.mean.astype(np.float32)}
        for i, s in enumerate(self.stages):
            arrays |= {
                f"s{i}_window": np.array(s.window),
                f"s{i}_mean_feature": s.mean_feature.astype(np.float32),
                f"s{i}_weights": s.weights.astype(np.float16),
                f"s{i}_bias": s.bias.astype(np.float32),
            }
        np.savez_compressed(path, **arrays)

    @classmethod
    def load(cls, path: Path) -> LandmarkRefiner:
        with np.load(path) as z:
            n = sum(1 for k in z.files if k.endswith("_window"))
            stages = [
                Stage(
                    int(z[f"s{i}_window"]),
                    z[f"s{i}_mean_feature"],
                    z[f"s{i}_weights"].astype(np.float32),
                    z[f"s{i}_bias"],
                )
                for i in range(n)
            ]
            return cls(z["linear"].astype(np.float64), z["mean"].astype(np.float64), stages)


# ---------------------------------------------------------------------------------- fitting


def ridge(x: np.ndarray, y: np.ndarray, lam: float) -> np.ndarray:
    """Ridge regression weights (F, K), lam relative to the mean feature energy (torch: numpy's
    OpenBLAS crashes on large solves on some of these machines)."""
    import torch

    xt, yt = torch.from_numpy(np.asarray(x, np.float64)), torch.from_numpy(np.asarray(y, np.float64))
    if xt.shape[0] < xt.shape[1]:  # dual form: fewer samples than features
        k = xt @ xt.T
        k += lam * k.diagonal().mean() * torch.eye(len(k), dtype=k.dtype)
        return (xt.T @ torch.linalg.solve(k, yt)).numpy()
    g = xt.T @ xt
    g += lam * g.diagonal().mean() * torch.eye(len(g), dtype=g.dtype)
    return torch.linalg.solve(g, xt.T @ yt).numpy()


def fit_linear(meshes: np.ndarray, truths: np.ndarray, lam: float = 1e-4) -> np.ndarray:
    x = np.array([mesh_features(m) for m in meshes])
    y = np.array([to_mesh_frame(t, m).ravel() for m, t in zip(meshes, truths)])
    return ridge(x, y, lam)


def mean_shape(truths: np.ndarray, canvas: int = CANVAS) -> np.ndarray:
    """The annotations' mean shape, placed in a canvas of the given side (centred)."""
    ref = truths[0]
    aligned = np.array([t @ (m := similarity(t, ref))[:, :2].T + m[:, 2] for t in truths])
    mean = aligned.mean(0) - aligned.mean((0, 1))
    return mean / np.abs(mean).max() * canvas * MEAN_HALF_EXTENT + canvas / 2


def fit_stage(images, points, truths, mean, window: int, lam: float) -> Stage:
    feats, steps = [], []
    for image, p, t in zip(images, points, truths):
        f, to_canvas, local = descriptors(image, p, mean, window)
        feats.append(f)
        steps.append((t @ to_canvas[:, :2].T + to_canvas[:, 2] - local).ravel())
    x, y = np.array(feats, np.float32), np.array(steps, np.float32)
    mu, bias = x.mean(0), y.mean(0)
    return Stage(window, mu, ridge(x - mu, y - bias, lam).astype(np.float32), bias)
