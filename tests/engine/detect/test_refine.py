"""The 468 -> 68 landmark refiner: its fitting maths, its file, and the shipped one on real faces."""

from __future__ import annotations

import numpy as np

from engine.detect.gradients import BINS, cell_histograms, orientation_integral, orientation_maps
from engine.detect.refine import (
    Canvas,
    LandmarkRefiner,
    fit_linear,
    fit_stage,
    mean_shape,
    predicted_steps,
    ridge,
    similarity,
    stage_features,
)


def _meshes(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.normal(0, 30, (468, 3))
    base[33, :2], base[263, :2] = (-30, 0), (30, 0)  # the eye corners set the frame
    meshes = []
    for _ in range(n):
        a, s, t = rng.normal(0, 0.2), rng.uniform(0.5, 2), rng.uniform(100, 300, 2)
        rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
        m = base + rng.normal(0, 1.0, base.shape)
        m[:, :2] = m[:, :2] @ rot.T * s + t
        m[:, 2] *= s
        meshes.append(m)
    return np.array(meshes)


def test_ridge_recovers_a_linear_map():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 10))
    w = rng.normal(size=(10, 3))
    np.testing.assert_allclose(ridge(x, x @ w, 1e-9), w, atol=1e-5)
    wide = rng.normal(size=(20, 50))  # fewer samples than features: the dual form, which interpolates
    y = rng.normal(size=(20, 2))
    np.testing.assert_allclose(wide @ ridge(wide, y, 1e-9), y, atol=1e-4)


def test_the_linear_map_learns_a_mesh_to_points_rule_in_any_pose():
    meshes = _meshes(1700)  # more faces than the 1,405 features: the map is identified
    pick = np.arange(68) * 6
    truths = (meshes[:, pick, :2] + meshes[:, pick + 1, :2]) / 2  # each point: the mean of two vertices
    refiner = LandmarkRefiner(fit_linear(meshes[:1600], truths[:1600], lam=1e-10), mean_shape(truths), [])
    err = np.array([np.abs(refiner.initial(m) - t).max() for m, t in zip(meshes[1600:], truths[1600:])])
    assert err.max() < 0.05  # pixels


def test_orientation_channels_of_a_ramp_and_of_it_turned_a_quarter():
    ramp = np.tile(np.arange(40, dtype=np.float32) * 3, (40, 1))  # gradient along x only: 0 degrees
    maps = orientation_maps(ramp)[1:-1, 1:-1]
    assert maps.shape == (38, 38, BINS)
    # 0 degrees lies halfway between the first and the last channel (15 and 165 degrees for 6)
    np.testing.assert_allclose(maps[..., 0], maps[..., -1], rtol=1e-5)
    assert maps[..., 0].min() > 0 and np.abs(maps[..., 1:-1]).max() < 1e-4
    rng = np.random.default_rng(0)
    image = rng.uniform(0, 255, (30, 30)).astype(np.float32)
    turned = orientation_maps(np.ascontiguousarray(np.rot90(image)))[1:-1, 1:-1]
    plain = orientation_maps(image)[1:-1, 1:-1]
    for k in range(BINS):  # a quarter turn moves every orientation by 90 degrees: half the channels
        np.testing.assert_allclose(turned[..., (k + BINS // 2) % BINS], np.rot90(plain[..., k]), atol=1e-2)


def test_cell_histograms_sum_cells_from_the_integral_and_ignore_contrast():
    rng = np.random.default_rng(1)
    gray = rng.uniform(40, 200, (64, 64)).astype(np.float32)
    integral = orientation_integral(gray)
    assert integral.shape == (65, 65, BINS)
    points = np.array([[30.0, 28.0], [20.0, 40.0]])
    feats = cell_histograms(integral, points, 4.0)
    assert feats.shape == (2, 16 * BINS) and feats.dtype == np.float32
    np.testing.assert_allclose((feats**2).sum(1), 1, atol=1e-3)  # unit length per point
    maps = orientation_maps(gray)
    direct = maps[20:24, 22:26].sum((0, 1))  # point 0's first cell: x 22..25, y 20..23
    first = np.sqrt(direct) / np.sqrt(maps[20:36, 22:38].sum())
    np.testing.assert_allclose(feats[0, :BINS], first, rtol=1e-3)
    brighter = cell_histograms(orientation_integral(gray * 1.5 + 20), points, 4.0)
    np.testing.assert_allclose(brighter, feats, atol=1e-3)  # contrast and brightness cancel


def test_similarity_and_a_stage_and_the_file_round_trip(tmp_path):
    rng = np.random.default_rng(2)
    src = rng.normal(size=(68, 2))
    m = np.array([[0.8, -0.6, 5.0], [0.6, 0.8, -3.0]])
    np.testing.assert_allclose(similarity(src, src @ m[:, :2].T + m[:, 2]), m, atol=1e-9)
    images = [rng.integers(0, 255, (200, 200, 3), dtype=np.uint8) for _ in range(6)]
    truths = np.array([rng.uniform(60, 140, (68, 2)) for _ in range(6)])
    mean = mean_shape(truths)
    canvases = [Canvas.of(im, t + 1.0, mean) for im, t in zip(images, truths)]
    np.testing.assert_allclose(canvases[0].to_image(canvases[0].to_local(truths[0])), truths[0], atol=1e-9)
    local = np.array([c.to_local(t + 1.0) for c, t in zip(canvases, truths)])
    x = np.array([stage_features(c.integral, p, 16) for c, p in zip(canvases, local)])
    assert x.shape == (6, 68 * 16 * BINS)
    y = np.array([(c.to_local(t) - p).ravel() for c, t, p in zip(canvases, truths, local)])
    stage = fit_stage(x, y, 16, 1e-9, rank=5)
    assert stage.weights.shape == (x.shape[1], 5) and stage.basis.shape == (5, 136)
    np.testing.assert_allclose(
        predicted_steps(stage, x), y, atol=1e-2
    )  # 6 centred samples span 5 directions: exact
    refiner = LandmarkRefiner(np.zeros((1405, 136)), mean, [stage])
    refiner.save(tmp_path / "r.npz")
    loaded = LandmarkRefiner.load(tmp_path / "r.npz")
    moved = loaded.stages[0].apply(canvases[0].integral, local[0])
    np.testing.assert_allclose(moved, local[0] + predicted_steps(stage, x[:1]).reshape(68, 2), atol=0.05)
    assert loaded.stages[0].window == 16


def test_the_shipped_refiner_beats_the_index_table_on_annotated_faces(shared_data):
    """On AFW faces (part of the refiner's training data: a regression check, not a held-out figure;
    the held-out figures are in resources/detect/README.md)."""
    from engine.detect import MediaPipeDetector, mesh_to_ibug68
    from engine.evaluation.landmark_figures import point_errors
    from engine.evaluation.landmarks300w import match_face
    from engine.io.annotations import find_annotated_images
    from engine.io.image import load_image

    detector = MediaPipeDetector(threads=1)
    faces = find_annotated_images(shared_data / "landmarks300w" / "afw")[:25]
    table, refined = [], []
    for ann in faces:
        truth = np.asarray(ann.points, np.float64)
        face = match_face(detector.detect(load_image(ann.image)), truth)
        if face is None:
            continue
        table.append(point_errors(mesh_to_ibug68(face.mesh), truth).mean())
        refined.append(point_errors(face.landmarks, truth).mean())
    assert len(refined) >= 20
    assert np.mean(refined) < 0.85 * np.mean(table)
