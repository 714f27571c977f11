"""The last landmark stage: an ensemble of regression trees (Kazemi & Sullivan, CVPR 2014).

After the linear cascade (engine.detect.refine) the face is warped once more into a canvas aligned
to the mean shape at its current points. Each stage reads the gray levels at a few hundred points
fixed to the shape (a landmark plus an offset that turns and scales with the face), normalised
per face, and sums the updates of many small trees whose splits compare two of those gray levels:
a nonlinear, lighting-robust correction the linear stages cannot make. Gradient boosting fits the
trees (``fit_tree_cascade``); run time is a few fancy-indexing passes over all trees at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
import scipy.sparse as sparse

from engine.detect.refine import canvas_gray, similarity, to_canvas_points, to_image_points


@dataclass
class TreeStage:
    anchor: np.ndarray  # (P,) landmark each sampled point is fixed to
    offset: np.ndarray  # (P, 2) its offset from that landmark in the mean shape (canvas px)
    left: np.ndarray  # (K, 2**D - 1) the two sampled points each split compares (heap order)
    right: np.ndarray  # (K, 2**D - 1)
    threshold: np.ndarray  # (K, 2**D - 1)
    leaves: np.ndarray  # (K, 2**D, R): each leaf's step in `basis` coordinates
    basis: np.ndarray  # (R, 136)

    @property
    def depth(self) -> int:
        return int(np.log2(self.leaves.shape[1]))

    def step(self, values: np.ndarray) -> np.ndarray:
        """(N, P) normalised gray levels -> (N, 136) the summed step of all trees."""
        n, k = len(values), len(self.left)
        rows, trees = np.arange(n)[:, None], np.arange(k)[None]
        node = np.zeros((n, k), np.int64)
        for level in range(self.depth):
            heap = node + (2**level - 1)
            diff = values[rows, self.left[trees, heap]] - values[rows, self.right[trees, heap]]
            node = node * 2 + (diff > self.threshold[trees, heap])
        return self.leaves[trees, node].sum(1) @ self.basis


@dataclass
class TreeCascade:
    """(image, 68 points) -> better 68 points."""

    mean: np.ndarray  # (68, 2) the mean shape in the canvas
    side: int  # canvas side (px)
    blur: float  # Gaussian sigma applied to the canvas before reading it
    stages: list[TreeStage]

    def __call__(self, image: np.ndarray, points: np.ndarray) -> np.ndarray:
        gray, to_canvas = self.canvas(image, points)
        shapes = to_canvas_points(points, to_canvas)[None]
        for stage in self.stages:
            values = read_shape_indexed(gray[None], np.zeros(1, np.int64), shapes, self.mean, stage)
            shapes = shapes + stage.step(values).reshape(1, 68, 2)
        return to_image_points(shapes[0], to_canvas).astype(np.float32)

    def canvas(self, image: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        to_canvas = similarity(points, self.mean)
        gray = canvas_gray(image, to_canvas, self.side).astype(np.float32)
        return (cv2.GaussianBlur(gray, (0, 0), self.blur) if self.blur else gray), to_canvas

    def arrays(self, prefix: str = "t") -> dict[str, np.ndarray]:
        out = {f"{prefix}_mean": self.mean.astype(np.float32), f"{prefix}_side": np.array(self.side),
               f"{prefix}_blur": np.array(self.blur, np.float32)}  # fmt: skip
        for i, s in enumerate(self.stages):
            out |= {
                f"{prefix}{i}_anchor": s.anchor.astype(np.int16),
                f"{prefix}{i}_offset": s.offset.astype(np.float32),
                f"{prefix}{i}_left": s.left.astype(np.int16),
                f"{prefix}{i}_right": s.right.astype(np.int16),
                f"{prefix}{i}_threshold": s.threshold.astype(np.float32),
                f"{prefix}{i}_leaves": s.leaves.astype(np.float16),
                f"{prefix}{i}_basis": s.basis.astype(np.float32),
            }
        return out

    @classmethod
    def from_arrays(cls, z, prefix: str = "t") -> TreeCascade | None:
        keys = list(z.keys())
        if f"{prefix}_mean" not in keys:
            return None
        n = sum(1 for k in keys if k.startswith(prefix) and k.endswith("_anchor"))
        stages = [
            TreeStage(
                z[f"{prefix}{i}_anchor"].astype(np.int64),
                z[f"{prefix}{i}_offset"].astype(np.float64),
                z[f"{prefix}{i}_left"].astype(np.int64),
                z[f"{prefix}{i}_right"].astype(np.int64),
                z[f"{prefix}{i}_threshold"].astype(np.float32),
                z[f"{prefix}{i}_leaves"].astype(np.float32),
                z[f"{prefix}{i}_basis"].astype(np.float32),
            )
            for i in range(n)
        ]
        return cls(
            z[f"{prefix}_mean"].astype(np.float64),
            int(z[f"{prefix}_side"]),
            float(z[f"{prefix}_blur"]),
            stages,
        )


def shape_rotations(mean: np.ndarray, shapes: np.ndarray) -> np.ndarray:
    """(N, 2, 2) the linear part of the similarity taking the (centred) mean to each shape: with
    the mean centred, a = <t, s> / |s|^2 and b = <t, s rotated by 90 degrees> / |s|^2 whatever
    the shape's own centre."""
    s = mean - mean.mean(0)
    both = np.stack([s.ravel(), np.stack([-s[:, 1], s[:, 0]], 1).ravel()], 1) / (s**2).sum()
    a, b = (shapes.reshape(len(shapes), -1) @ both).T
    return np.stack([np.stack([a, -b], -1), np.stack([b, a], -1)], 1)


def read_shape_indexed(
    grays: np.ndarray, which: np.ndarray, shapes: np.ndarray, mean: np.ndarray, stage: TreeStage
) -> np.ndarray:
    """Bilinear gray levels (N, P) at each shape's stage points, zero-mean unit-variance per face.
    grays (G, side, side); which (N,) the canvas of each shape; shapes (N, 68, 2) in the canvas."""
    turned = np.matmul(stage.offset[None], shape_rotations(mean, shapes).transpose(0, 2, 1))
    at = (shapes[:, stage.anchor] + turned).astype(np.float32)
    v = np.empty(at.shape[:2], np.float32)
    for i, (face, xy) in enumerate(zip(which, at)):  # cv2's bilinear lookup: the same at run time
        v[i] = cv2.remap(
            grays[face], xy[None, :, 0], xy[None, :, 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )[0]
    v -= v.mean(1, keepdims=True)
    v /= np.sqrt((v * v).mean(1, keepdims=True)) + 1e-3
    return v


# ---------------------------------------------------------------------------------- fitting


@dataclass
class TreeSettings:
    stages: int = 8
    trees: int = 200  # per stage
    depth: int = 4
    points: int = 400  # sampled gray levels per stage
    candidates: int = 20  # random splits tried per node
    shrinkage: float = 0.1
    pair_falloff: float = 1.0  # a split's two points are drawn with probability exp(-falloff d / iod)
    radius: tuple[float, ...] = (0.35, 0.3, 0.25, 0.2, 0.15, 0.12, 0.1, 0.1)  # offsets, x iod, per stage
    split_dims: int = 24  # residual directions the split search scores (the leaves keep all 136)
    leaf_rank: int = 32  # directions each stage's stored leaves keep
    side: int = 160
    blur: float = 1.0


def fit_tree_cascade(
    images: list[np.ndarray],
    faces: np.ndarray,
    starts: np.ndarray,
    truths: np.ndarray,
    mean: np.ndarray,
    settings: TreeSettings,
    rng: np.random.Generator,
    relight: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None,
    log: Callable[[str], None] = print,
) -> TreeCascade:
    """Gradient-boosted trees from training samples: sample j starts at starts[j] (image pixels)
    on images[faces[j]] and should reach truths[j]; relight: optional photometric augmentation of
    each sample's image (every sample after the first of its face)."""
    model = TreeCascade(mean, settings.side, settings.blur, [])
    gray_list, shape_list, target_list = [], [], []
    seen: set[int] = set()
    for face, start, truth in zip(faces, starts, truths):
        image = images[face] if face not in seen or relight is None else relight(images[face], rng)
        seen.add(int(face))
        gray, to_canvas = model.canvas(image, start)
        gray_list.append(gray)
        shape_list.append(to_canvas_points(start, to_canvas))
        target_list.append(to_canvas_points(truth, to_canvas))
    grays, current, goal = np.array(gray_list), np.array(shape_list), np.array(target_list)
    which = np.arange(len(current))
    iod = float(np.linalg.norm(mean[36] - mean[45]))
    for t in range(settings.stages):
        radius = settings.radius[min(t, len(settings.radius) - 1)] * iod
        anchor = rng.integers(0, 68, settings.points)
        offset = rng.uniform(-radius, radius, (settings.points, 2))
        probe = TreeStage(anchor, offset, *(np.zeros(0),) * 5)
        values = read_shape_indexed(grays, which, current, mean, probe)
        residual = (goal - current).reshape(len(current), -1).astype(np.float32)
        stage = _fit_stage(values, residual, mean[anchor] + offset, settings, iod, rng)
        model.stages.append(TreeStage(anchor, offset, *stage))
        current = current + model.stages[-1].step(values).reshape(current.shape)
        error = np.linalg.norm(current - goal, axis=2).mean(1) / np.linalg.norm(
            goal[:, 36] - goal[:, 45], axis=1
        )
        log(f"  tree stage {t + 1}/{settings.stages}: train NME {error.mean() * 100:.2f}%")
    return model


def _fit_stage(values, residual, where, settings: TreeSettings, iod: float, rng):
    """One stage's trees by gradient boosting; leaves stored in the stage's main directions."""
    centred = residual - residual.mean(0)
    scored = np.linalg.svd(centred[:: max(1, len(centred) // 4000)], full_matrices=False)[2][
        : settings.split_dims
    ]
    splits, leaf_list = [], []
    for _ in range(settings.trees):
        tree, leaf, reached = _fit_tree(values, residual, residual @ scored.T, where, settings, iod, rng)
        leaf *= settings.shrinkage
        residual = residual - leaf[reached]
        splits.append(tree)
        leaf_list.append(leaf)
    leaves = np.array(leaf_list)  # (K, 2**D, 136)
    basis = np.linalg.svd(leaves.reshape(-1, leaves.shape[-1]), full_matrices=False)[2][: settings.leaf_rank]
    left, right, threshold = (np.array([s[i] for s in splits]) for i in range(3))
    return left, right, threshold, (leaves @ basis.T).astype(np.float32), basis.astype(np.float32)


def _fit_tree(values, residual, scored, where, settings: TreeSettings, iod: float, rng):
    """One tree grown level by level: at each node the best of `candidates` random splits by the
    variance of the (scored) residual they explain. -> (left, right, threshold) in heap order,
    the leaves' mean residual (2**D, 136) and each sample's leaf."""
    n, p = values.shape
    rows = np.arange(n)[:, None]
    node = np.zeros(n, np.int64)
    left, right, threshold = [], [], []
    for level in range(settings.depth):
        nodes, c = 2**level, settings.candidates
        u, v = _close_pairs(where, (nodes, c), settings.pair_falloff / iod, rng)
        diff = values[rows, u[node]] - values[rows, v[node]]  # (n, c)
        members = [np.flatnonzero(node == k) for k in range(nodes)]
        pick = np.array([rng.choice(m) if len(m) else 0 for m in members])
        thr = (values[pick[:, None], u] - values[pick[:, None], v]) * rng.uniform(0.5, 1.0, (nodes, c))
        goes = diff > thr[node]
        column = (np.arange(c)[None] * nodes + node[:, None]) * 2 + goes
        onehot = sparse.csr_matrix(
            (np.ones(n * c, np.float32), column.ravel(), np.arange(0, n * c + 1, c)), shape=(n, c * nodes * 2)
        )
        sums = np.asarray(onehot.T @ scored).reshape(c, nodes, 2, -1)
        counts = np.asarray(onehot.sum(0)).reshape(c, nodes, 2)
        best = ((sums**2).sum(-1) / np.maximum(counts, 1)).sum(-1).argmax(0)
        k = np.arange(nodes)
        left.append(u[k, best])
        right.append(v[k, best])
        threshold.append(thr[k, best])
        node = node * 2 + goes[np.arange(n), best[node]]
    leaves = np.zeros((2**settings.depth, residual.shape[1]), np.float32)
    np.add.at(leaves, node, residual)
    leaves /= np.maximum(np.bincount(node, minlength=len(leaves)), 1)[:, None]
    return (np.concatenate(left), np.concatenate(right), np.concatenate(threshold)), leaves, node


def _close_pairs(
    where: np.ndarray, shape: tuple[int, int], falloff: float, rng
) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of sampled points, the second drawn near the first (Kazemi's exp(-lambda d) prior)."""
    u, v = rng.integers(0, len(where), shape), rng.integers(0, len(where), shape)
    for _ in range(30):
        far = (rng.random(shape) > np.exp(-falloff * np.linalg.norm(where[u] - where[v], axis=-1))) | (u == v)
        if not far.any():
            break
        v[far] = rng.integers(0, len(where), int(far.sum()))
    return u, v
