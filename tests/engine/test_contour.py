"""The jaw points slide to the visible contour: engine/contour.py and FaceModel.landmark_indices."""

import math

import torch

from engine.camera import euler_to_matrix, project, to_camera


def _seen(face_model, yaw_deg: float, pitch_deg: float = 0.0):
    rotation = torch.tensor([[math.radians(pitch_deg), math.radians(yaw_deg), 0.0]])
    ndc = project(to_camera(face_model.mean[None], rotation), torch.tensor([[0.1]]), torch.zeros(1, 2))
    return face_model.landmark_indices(ndc, rotation)[0], ndc


def test_a_frontal_face_keeps_its_calibrated_jaw_vertices(face_model):
    ids, _ = _seen(face_model, 0.0)
    assert torch.equal(ids, face_model.landmarks)
    assert torch.equal(face_model.landmark_indices(face_model.mean[None], None)[0], face_model.landmarks)


def test_the_jaw_of_the_side_turned_away_moves_in_toward_the_nose(face_model):
    ids, ndc = _seen(face_model, 45.0)
    moved = ids[:17] != face_model.landmarks[:17]
    # positive yaw turns points 9-16 away from the camera (model +x goes back)
    assert moved[12:].all() and not moved[:8].any()
    mean = face_model.mean
    assert (mean[ids[12:17], 0].abs() < mean[face_model.landmarks[12:17], 0].abs()).all()
    # each moved point is the outermost of its line in the image (the silhouette), outward being
    # the point's direction from the face's centre, turned with the head
    turned = euler_to_matrix(torch.tensor([[0.0, math.radians(45.0), 0.0]]))[0]
    for j in range(12, 17):
        line = face_model.jaw_lines.vertices[j]
        outward = (turned @ face_model.jaw_lines.directions[j])[:2] * torch.tensor([1.0, -1.0])
        assert ndc[0, ids[j], :2] @ outward >= (ndc[0, line, :2] @ outward).max() - 1e-6
    assert ndc[0, ids[16], 0] >= ndc[0, face_model.jaw_lines.vertices[16], 0].max() - 1e-6
    assert torch.equal(ids[17:], face_model.landmarks[17:])


def test_a_mirrored_view_picks_the_mirrored_vertices(face_model):
    left, _ = _seen(face_model, 40.0, 10.0)
    right, _ = _seen(face_model, -40.0, 10.0)
    assert torch.equal(face_model.symmetry[left[:17]].flip(0), right[:17])


def test_the_contour_points_carry_gradients(face_model):
    from tests.conftest import random_params

    params = random_params(face_model, batch=2, seed=1)
    params.identity.requires_grad_(True)
    _, _, ndc = params.geometry(face_model)
    face_model.landmark_vertices(ndc, params.rotation)[..., :2].sum().backward()
    assert params.identity.grad is not None and params.identity.grad.abs().sum() > 0
