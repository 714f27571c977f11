"""scripts/pseudo_label_faces.py: what it keeps of each teacher-labelled face."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "pseudo_label_faces.py"


def _script():
    spec = importlib.util.spec_from_file_location("pseudo_label_faces", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_face_is_cut_out_with_its_mesh_and_points_moved_alike():
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:300, :400]
    image = np.stack([xx * 0.6, yy * 0.8, np.full_like(xx, 90)], -1).astype(np.uint8)  # smooth ramps
    points = rng.uniform((150, 100), (250, 220), (68, 2))
    mesh = np.concatenate([rng.uniform((150, 100), (250, 220), (468, 2)), rng.normal(0, 10, (468, 1))], 1)
    crop, moved_mesh, moved = _script().cut_out(image, mesh, points, 128)
    assert crop.shape == (128, 128, 3)
    scale = 128 / (2 * 1.1 * (points.max(0) - points.min(0)).max())
    np.testing.assert_allclose(moved_mesh[:, 2], mesh[:, 2] * scale)  # depth scales with the face
    np.testing.assert_allclose((moved.min(0) + moved.max(0)) / 2, 64, atol=1e-9)  # centred
    # a point keeps its pixel: the crop at a moved point shows what the image had at the point
    for (x, y), (u, v) in zip(points[::7], moved[::7]):
        np.testing.assert_allclose(crop[round(v), round(u), :2], image[round(y), round(x), :2], atol=3)
