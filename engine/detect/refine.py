"""68 iBUG points from the 468-point Face Mesh: a learned linear map, then a cascade on the pixels.

Stage 0 maps the whole mesh (x, y and relative depth, in a frame normalised by the eyes' line and
the mesh's size) to the 68 points by ridge regression: it learns where an annotator puts each
point from all 468, not from one or two fixed vertices (the jaw of a turned face especially).
Then a supervised descent cascade (Xiong & De la Torre, CVPR 2013) refines the points: the face is
warped once into a canvas aligned to the mean shape, its oriented gradients integrated once
(engine.detect.gradients), and each stage reads cells of them around the current points and
regresses the update linearly (reduced rank), coarse to fine. Everything is fitted in closed form
(ridge) by
``scripts/train_landmark_refiner.py`` on the 300-W annotations (see resources/detect/README.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from engine.detect.gradients import cell_histograms, orientation_integral

CANVAS = 144  # default side of the face canvas the cascade reads its descriptors from
MEAN_HALF_EXTENT = 0.4  # the mean shape spans +-0.4 of the canvas around its centre
CELLS = 4  # each point's descriptor: CELLS x CELLS cells of oriented gradients


def mesh_frame(mesh: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """(468, 3) mesh in pixels -> centre (2,), rotation (2, 2) of the eye line, size (RMS radius)."""
    centre = mesh[:, :2].mean(0)
    eye = mesh[263, :2] - mesh[33, :2]
    a = float(np.arctan2(eye[1], eye[0]))
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    local = (mesh[:, :2] - centre) @ rot
    return centre, rot, float(np.sqrt((local**2).sum(1).mean()))


def mesh_features(mesh: np.ndarray, frame: tuple[np.ndarray, np.ndarray, float] | None = None) -> np.ndarray:
    """(468, 3) -> (1405,) normalised x, y, depth and a bias term (the linear map's input); frame:
    the mesh's ``mesh_frame`` if already known."""
    centre, rot, size = mesh_frame(mesh) if frame is None else frame
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


def to_canvas_points(points: np.ndarray, to_canvas: np.ndarray) -> np.ndarray:
    """Image pixels -> canvas pixels, by the (2, 3) similarity."""
    return points @ to_canvas[:, :2].T + to_canvas[:, 2]


def to_image_points(local: np.ndarray, to_canvas: np.ndarray) -> np.ndarray:
    """Canvas pixels -> image pixels: the similarity [[a, -b], [b, a]] inverted."""
    a, b = to_canvas[0, 0], to_canvas[1, 0]
    inverse = np.array([[a, b], [-b, a]]) / (a * a + b * b)
    return (local - to_canvas[:, 2]) @ inverse.T


def canvas_side(mean: np.ndarray) -> int:
    return int(round(2 * float(mean.mean(0).mean())))


def canvas_gray(image: np.ndarray, to_canvas: np.ndarray, side: int) -> np.ndarray:
    """The face warped into the (side x side) canvas, gray."""
    warped = cv2.warpAffine(
        image, to_canvas, (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    return cv2.cvtColor(warped, cv2.COLOR_RGB2GRAY) if warped.ndim == 3 else warped


@dataclass
class Canvas:
    """The face warped to the mean shape once, for every stage: the integral image of its oriented
    gradients and the similarity taking image pixels to its pixels."""

    integral: np.ndarray  # (side + 1, side + 1, BINS) float64
    to_canvas: np.ndarray  # (2, 3)

    @classmethod
    def of(cls, image: np.ndarray, points: np.ndarray, mean: np.ndarray) -> Canvas:
        """The canvas of a face whose current points are `points` (its side implied by the mean)."""
        to_canvas = similarity(points, mean)
        return cls(orientation_integral(canvas_gray(image, to_canvas, canvas_side(mean))), to_canvas)

    def to_local(self, points: np.ndarray) -> np.ndarray:
        return to_canvas_points(points, self.to_canvas)

    def to_image(self, local: np.ndarray) -> np.ndarray:
        return to_image_points(local, self.to_canvas)


@dataclass
class Stage:
    window: float  # side of the cell grid around each point (canvas pixels)
    mean_feature: np.ndarray  # (F,)
    weights: np.ndarray  # (F, R): the features' coordinates of the step in `basis`
    basis: np.ndarray  # (R, 136): the step's R directions (R <= 136: a reduced-rank regression)
    bias: np.ndarray  # (136,)

    def apply(self, integral: np.ndarray, local: np.ndarray) -> np.ndarray:
        """(68, 2) points in the canvas -> the points moved by this stage's regressed step."""
        step = self._regress(stage_features(integral, local, self.window) - self.mean_feature)
        return local + (step + self.bias).reshape(68, 2)

    def _regress(self, x: np.ndarray) -> np.ndarray:
        """``x @ weights @ basis``, as torch's single-threaded matrix-vector products over the
        transposed factors (numpy's reads the matrix across its rows, on every BLAS thread)."""
        import torch

        factors = self.__dict__.get("_factors")
        if factors is None:  # stored transposed from now on (weights stays a view of it: no copy)
            rows = np.ascontiguousarray(self.weights.T, np.float32)
            self.weights = rows.T
            basis = torch.from_numpy(np.ascontiguousarray(self.basis.T, np.float32))
            factors = self.__dict__["_factors"] = (torch.from_numpy(rows), basis)
        coords = torch.mv(factors[0], torch.from_numpy(np.asarray(x, np.float32)))
        return torch.mv(factors[1], coords).numpy()


def stage_features(integral: np.ndarray, local: np.ndarray, window: float) -> np.ndarray:
    """(68 * CELLS * CELLS * BINS,) the oriented-gradient cells around each point."""
    return cell_histograms(integral, local, window / CELLS, CELLS).ravel()


class LandmarkRefiner:
    """Face Mesh (468, 3) + the image -> 68 iBUG points (pixels)."""

    def __init__(self, linear: np.ndarray, mean: np.ndarray, stages: list[Stage], trees=None):
        self.linear, self.mean, self.stages = linear, mean, stages
        self.trees = trees  # an engine.detect.trees.TreeCascade run after the stages, or None

    def initial(self, mesh: np.ndarray) -> np.ndarray:
        """The linear map alone (stage 0; torch's matrix-vector product, as the stages')."""
        import torch

        transposed = self.__dict__.get("_linear_t")
        if transposed is None:
            rows = np.ascontiguousarray(self.linear.T, np.float32)
            transposed = self.__dict__["_linear_t"] = torch.from_numpy(rows)
        centre, rot, size = frame = mesh_frame(mesh)
        x = torch.from_numpy(mesh_features(mesh, frame).astype(np.float32))
        points = torch.mv(transposed, x).numpy().reshape(68, 2)
        return points * size @ rot.T + centre

    def __call__(self, image: np.ndarray, mesh: np.ndarray) -> np.ndarray:
        points = self.initial(mesh)
        if not self.stages:
            return points.astype(np.float32)
        canvas = Canvas.of(image, points, self.mean)
        local = canvas.to_local(points)
        for stage in self.stages:
            local = stage.apply(canvas.integral, local)
        points = canvas.to_image(local)
        return (self.trees(image, points) if self.trees is not None else points).astype(np.float32)

    def save(self, path: Path) -> None:
        arrays = {"linear": self.linear.astype(np.float32), "mean": self.mean.astype(np.float32)}
        for i, s in enumerate(self.stages):
            arrays |= {
                f"s{i}_window": np.array(s.window, np.float32),
                f"s{i}_mean_feature": s.mean_feature.astype(np.float32),
                f"s{i}_weights": s.weights.astype(np.float16),
                f"s{i}_basis": s.basis.astype(np.float32),
                f"s{i}_bias": s.bias.astype(np.float32),
            }
        np.savez_compressed(path, **arrays | (self.trees.arrays() if self.trees is not None else {}))

    @classmethod
    def load(cls, path: Path) -> LandmarkRefiner:
        from engine.detect.trees import TreeCascade

        with np.load(path) as z:
            n = sum(1 for k in z.files if k.endswith("_window"))
            stages = [
                Stage(
                    float(z[f"s{i}_window"]),
                    z[f"s{i}_mean_feature"],
                    z[f"s{i}_weights"].astype(np.float32),
                    z[f"s{i}_basis"],
                    z[f"s{i}_bias"],
                )
                for i in range(n)
            ]
            trees = TreeCascade.from_arrays(z)
            return cls(z["linear"].astype(np.float64), z["mean"].astype(np.float64), stages, trees)


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


def fit_stage(features: np.ndarray, steps: np.ndarray, window: float, lam: float, rank: int = 136) -> Stage:
    """A stage from its training samples: features (N, F) of ``stage_features`` at the current
    points and the steps (N, 136) from them to the annotations, both in each face's canvas. The
    ridge map is cut to the `rank` main directions of its fitted steps (reduced-rank ridge
    regression): the run-time product costs F x rank, not F x 136."""
    import torch

    x, y = np.asarray(features, np.float32), np.asarray(steps, np.float32)
    mu, bias = x.mean(0), y.mean(0)
    w = torch.from_numpy(ridge(x - mu, y - bias, lam))
    fitted = torch.from_numpy(x - mu).double() @ w
    basis = torch.linalg.svd(fitted, full_matrices=False).Vh[:rank]  # (rank, 136), orthonormal
    return Stage(window, mu, (w @ basis.T).float().numpy(), basis.float().numpy(), bias)


def predicted_steps(stage: Stage, features: np.ndarray) -> np.ndarray:
    """(N, F) features -> (N, 136) the stage's steps (torch: the training set's product is large)."""
    import torch

    x = torch.from_numpy(np.asarray(features, np.float32) - stage.mean_feature)
    coords = x @ torch.from_numpy(np.ascontiguousarray(stage.weights, np.float32))
    return (coords @ torch.from_numpy(stage.basis)).numpy() + stage.bias
