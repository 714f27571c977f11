import torch

from engine.model.fit import FitConfig, fit_landmarks
from tests.conftest import random_params


def test_fit_recovers_viewpoint_from_clean_landmarks(face_model):
    params = random_params(face_model, batch=6, seed=3)
    _, _, ndc = params.geometry(face_model)
    landmarks = ndc[:, face_model.landmarks, :2]
    noise = torch.randn(landmarks.shape, generator=torch.Generator().manual_seed(0)) * 0.003
    fit = fit_landmarks(face_model, landmarks + noise)
    assert (fit.rotation - params.rotation).abs().max() < 0.05  # < 3 degrees
    assert (fit.translation - params.translation).abs().max() < 0.02
    # Scale trades off against face size (identity) under 68 points: a few percent is inherent.
    assert (fit.scale / params.scale - 1).abs().max() < 0.08
    assert fit.rms_error.max() < 0.012  # the lower lip under mouthShrugLower is the hardest point
    assert fit.expression.min() >= 0 and fit.expression.max() <= 1


def test_fit_explains_landmarks_better_than_the_mean_face(face_model):
    params = random_params(face_model, batch=4, seed=5)
    params.identity[:, :10] = torch.randn(4, 10) * 1.5
    _, _, ndc = params.geometry(face_model)
    landmarks = ndc[:, face_model.landmarks, :2]
    fit = fit_landmarks(face_model, landmarks)
    rigid_only = fit_landmarks(face_model, landmarks, FitConfig(identity_weight=1e6, expression_weight=1e6))
    assert fit.rms_error.mean() < 0.7 * rigid_only.rms_error.mean()


def test_the_face_mesh_points_pin_the_shape_down_better_than_68(face_model):
    """With the 468 Face Mesh points placed on the model (scripts/register_face_mesh.py), the fit
    recovers a known shape more closely than from the 68 alone."""
    import pytest

    from engine.model.fit import split_points

    assert face_model.has_dense
    params = random_params(face_model, batch=4, seed=7)
    params.identity[:, :20] = torch.randn(4, 20, generator=torch.Generator().manual_seed(1))
    verts, _, ndc = params.geometry(face_model)
    points = torch.cat([ndc[:, face_model.landmarks, :2], face_model.dense_points(ndc)[..., :2]], 1)
    ibug, dense = split_points(points)
    assert dense is not None and dense.shape == (4, 468, 2)
    config = FitConfig(n_identity=80, dense_weight=1.0)

    def shape_error(fit):
        fitted = face_model.vertices(fit.identity, fit.expression)
        return float((fitted - face_model.vertices(params.identity, params.expression)).norm(dim=-1).mean())

    assert shape_error(fit_landmarks(face_model, ibug, config, dense)) < 0.85 * shape_error(
        fit_landmarks(face_model, ibug, config)
    )
    with pytest.raises(ValueError, match="68 or 68 \\+ 468"):
        split_points(points[:, :100])
