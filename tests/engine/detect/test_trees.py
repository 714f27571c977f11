"""The regression-tree landmark stage: its shape maths, that boosting learns, and its file."""

from __future__ import annotations

import numpy as np

from engine.detect.refine import LandmarkRefiner, mean_shape, similarity
from engine.detect.trees import TreeCascade, TreeSettings, fit_tree_cascade, shape_rotations

_SMALL = TreeSettings(stages=2, trees=40, depth=3, points=120, candidates=12, split_dims=8, leaf_rank=8,
                      radius=(0.3, 0.2), side=96, blur=1.0)  # fmt: skip


def _template() -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, 68, endpoint=False)
    shape = np.stack([np.cos(t) * 40, np.sin(2 * t) * 25 + np.sin(t) * 15], 1)
    shape[36], shape[45] = (-30, -10), (30, -10)  # the eye corners set the scale (NME)
    return shape


def _faces(n: int, seed: int) -> tuple[list[np.ndarray], np.ndarray]:
    """Images whose 68 points are dark dots on noise, each face turned, scaled and moved."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:160, :160].astype(np.float32)
    images, truths = [], []
    for _ in range(n):
        a, s = rng.normal(0, 0.15), rng.uniform(0.9, 1.1)
        rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]]) * s
        points = _template() @ rot.T + rng.uniform(70, 90, 2)
        gray = rng.normal(170, 8, (160, 160)).astype(np.float32)
        for x, y in points:
            gray -= 110 * np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 2.0**2))
        images.append(np.repeat(np.clip(gray, 0, 255).astype(np.uint8)[..., None], 3, 2))
        truths.append(points)
    return images, np.array(truths)


def _starts(truths: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return truths + rng.uniform(-3, 3, (len(truths), 1, 2)) + rng.normal(0, 0.7, truths.shape)


def _nme(points: np.ndarray, truths: np.ndarray) -> float:
    iod = np.linalg.norm(truths[:, 36] - truths[:, 45], axis=1)
    return float((np.linalg.norm(points - truths, axis=2).mean(1) / iod).mean())


def test_shape_rotations_are_the_linear_part_of_the_similarity_to_each_shape():
    rng = np.random.default_rng(0)
    mean = rng.normal(0, 20, (68, 2)) + 50
    shapes = rng.normal(0, 20, (5, 68, 2)) + 80
    expected = np.array([similarity(mean, s)[:, :2] for s in shapes])
    np.testing.assert_allclose(shape_rotations(mean, shapes), expected, atol=1e-9)


def test_boosted_trees_move_points_onto_the_features_of_faces_they_never_saw(tmp_path):
    images, truths = _faces(60, seed=1)
    starts = np.concatenate([_starts(truths, 2), _starts(truths, 3)])
    faces = np.concatenate([np.arange(60), np.arange(60)])
    mean = mean_shape(truths) * (_SMALL.side / 160)  # the canvas holds the face at about this scale
    logs: list[str] = []
    cascade = fit_tree_cascade(images, faces, starts, np.concatenate([truths, truths]), mean, _SMALL,
                               np.random.default_rng(4), log=logs.append)  # fmt: skip
    assert len(cascade.stages) == 2 and len(logs) == 2

    test_images, test_truths = _faces(20, seed=9)
    test_starts = _starts(test_truths, 10)
    moved = np.array([cascade(im, s) for im, s in zip(test_images, test_starts)])
    assert _nme(moved, test_truths) < 0.7 * _nme(test_starts, test_truths)

    # the refiner's file keeps the trees, and a refiner without trees reads back without them
    plain = LandmarkRefiner(np.zeros((1405, 136)), mean, [])
    plain.save(tmp_path / "plain.npz")
    assert LandmarkRefiner.load(tmp_path / "plain.npz").trees is None
    LandmarkRefiner(np.zeros((1405, 136)), mean, [], cascade).save(tmp_path / "trees.npz")
    loaded = LandmarkRefiner.load(tmp_path / "trees.npz").trees
    assert isinstance(loaded, TreeCascade) and len(loaded.stages) == 2
    again = np.array([loaded(im, s) for im, s in zip(test_images, test_starts)])
    np.testing.assert_allclose(again, moved, atol=0.05)  # float16 leaves: within a twentieth of a pixel
