import torch

from engine.model.fit import FitConfig, fit_landmarks
from tests.conftest import random_params


def test_fit_recovers_viewpoint_from_clean_landmarks(face_model):
    params = random_params(face_model, batch=6, seed=3)
    _, _, ndc = params.geometry(face_model)
    landmarks = face_model.landmark_vertices(ndc, params.rotation)[..., :2]
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
    landmarks = face_model.landmark_vertices(ndc, params.rotation)[..., :2]
    fit = fit_landmarks(face_model, landmarks)
    rigid_only = fit_landmarks(face_model, landmarks, FitConfig(identity_weight=1e6, expression_weight=1e6))
    assert fit.rms_error.mean() < 0.7 * rigid_only.rms_error.mean()


def test_the_face_mesh_points_pin_the_shape_down_better_than_68(face_model):
    """With the 468 Face Mesh points placed on the model (scripts/register_face_mesh.py), the fit
    recovers a known shape more closely than from the 68 alone (by about 5% since the fit holds its
    blendshapes in their box properly; 2D points say little about depth)."""
    import pytest

    from engine.model.fit import split_points

    assert face_model.has_dense
    params = random_params(face_model, batch=4, seed=7)
    params.identity[:, :20] = torch.randn(4, 20, generator=torch.Generator().manual_seed(1))
    verts, _, ndc = params.geometry(face_model)
    points = torch.cat(
        [face_model.landmark_vertices(ndc, params.rotation)[..., :2], face_model.dense_points(ndc)[..., :2]],
        1,
    )
    ibug, dense = split_points(points)
    assert dense is not None and dense.shape == (4, 468, 2)
    config = FitConfig(n_identity=80, dense_weight=1.0)

    def shape_error(fit):
        fitted = face_model.vertices(fit.identity, fit.expression)
        return float((fitted - face_model.vertices(params.identity, params.expression)).norm(dim=-1).mean())

    assert shape_error(fit_landmarks(face_model, ibug, config, dense)) < 0.97 * shape_error(
        fit_landmarks(face_model, ibug, config)
    )
    with pytest.raises(ValueError, match="68 or 68 \\+ 468"):
        split_points(points[:, :100])


def test_box_least_squares_finds_the_exact_minimum():
    """Against brute force: every way to hold the boxed variables at 0, at 1 or free."""
    import itertools

    from engine.model.fit import box_least_squares

    gen = torch.Generator().manual_seed(4)
    k, first_boxed = 7, 3
    for _ in range(5):
        m = torch.randn(1, k, 12, generator=gen, dtype=torch.float64)
        lhs = m @ m.transpose(1, 2) + 0.1 * torch.eye(k, dtype=torch.float64)
        rhs = torch.randn(1, k, generator=gen, dtype=torch.float64) * 4
        x, _ = box_least_squares(lhs, rhs, first_boxed)

        def objective(v, a=lhs[0], b=rhs[0]):
            return float(0.5 * v @ a @ v - b @ v)

        best = float("inf")
        for states in itertools.product((0, 1, None), repeat=k - first_boxed):
            held = [i + first_boxed for i, s in enumerate(states) if s is not None]
            free = [i for i in range(k) if i not in held]
            v = torch.zeros(k, dtype=torch.float64)
            for i, s in zip(range(first_boxed, k), states):
                if s is not None:
                    v[i] = s
            a, b = lhs[0][free][:, free], rhs[0][free] - lhs[0][free] @ v
            v[free] = torch.linalg.solve(a, b)
            boxed = v[first_boxed:]
            if (boxed >= -1e-9).all() and (boxed <= 1 + 1e-9).all():
                best = min(best, objective(v))
        assert (x[0, first_boxed:] >= 0).all() and (x[0, first_boxed:] <= 1).all()
        assert objective(x[0]) <= best + 1e-9


def test_the_fit_error_does_not_grow_with_more_iterations(face_model):
    """Each step of the alternation must descend (clamping a free solve did not: the error grew)."""
    params = random_params(face_model, batch=6, seed=11)
    params.expression[:] = (
        torch.rand(params.expression.shape, generator=torch.Generator().manual_seed(2)) * 0.6
    )
    _, _, ndc = params.geometry(face_model)
    landmarks = face_model.landmark_vertices(ndc, params.rotation)[..., :2]
    landmarks = landmarks + torch.randn(landmarks.shape, generator=torch.Generator().manual_seed(3)) * 0.01
    errors = [
        fit_landmarks(face_model, landmarks, FitConfig(iterations=n)).rms_error.mean() for n in (1, 2, 4, 8)
    ]
    assert all(later <= earlier + 1e-4 for earlier, later in zip(errors, errors[1:]))
