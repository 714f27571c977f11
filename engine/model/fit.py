"""Landmark fit: viewpoint, identity and expression from 68 2D landmarks, no trained weights.

Alternates two linear solves (a few ms): a scaled-orthographic camera for the current shape
(affine least squares, then the nearest scaled rotation), and regularised least squares for
the shape coefficients under that camera. Expressions are clamped to their [0, 1] range.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from engine.camera import matrix_to_euler
from engine.facemodel import FaceModel


@dataclass
class FitConfig:
    iterations: int = 6
    n_identity: int = 40  # 68 points cannot pin more modes than this down
    identity_weight: float = 3e-4  # prior strength, in squared NDC per unit coefficient
    expression_weight: float = 3e-4
    jaw_weight: float = 0.5  # the jaw contour slides along the face as it turns
    dense_weight: float = 0.25  # each of the 468 Face Mesh points, when they are given


@dataclass
class LandmarkFit:
    rotation: torch.Tensor  # (B, 3)
    translation: torch.Tensor  # (B, 2)
    scale: torch.Tensor  # (B, 1)
    identity: torch.Tensor  # (B, n_identity of the model)
    expression: torch.Tensor  # (B, n_expression)
    rms_error: torch.Tensor  # (B,) NDC


def _landmark_weights(config: FitConfig, device, model: FaceModel | None = None) -> torch.Tensor:
    """(68,) or, with the model's dense points, (68 + 468,) per-point weights."""
    weights = torch.ones(68, device=device)
    weights[:17] = config.jaw_weight
    if model is not None:
        assert model.dense_weights is not None
        weights = torch.cat([weights, config.dense_weight * model.dense_weights.to(device)])
    return weights


def _targets(landmarks_ndc: torch.Tensor, dense_ndc: torch.Tensor | None) -> torch.Tensor:
    """The crop-NDC points to fit (x right, y down) -> y up, the 68 then the dense ones."""
    points = landmarks_ndc if dense_ndc is None else torch.cat([landmarks_ndc, dense_ndc], 1)
    return points * points.new_tensor([1.0, -1.0])


def _fit_camera(points3d: torch.Tensor, target: torch.Tensor, weights: torch.Tensor):
    """Weighted affine fit of (B, N, 3) -> (B, N, 2) y-up NDC, projected to a scaled rotation."""
    ones = torch.ones_like(points3d[..., :1])
    design = torch.cat([points3d, ones], -1) * weights[:, None]
    # Normal equations of a 4-unknown problem: far cheaper than lstsq's general path.
    solution = torch.linalg.solve(
        design.transpose(1, 2) @ design, design.transpose(1, 2) @ (target * weights[:, None])
    )  # (B, 4, 2)
    affine, shift = solution[:, :3].transpose(1, 2), solution[:, 3]
    u, sing, vt = torch.linalg.svd(affine, full_matrices=False)
    rows = u @ vt  # (B, 2, 3) orthonormal rows
    third = torch.linalg.cross(rows[:, 0], rows[:, 1], dim=-1)
    rotation = torch.cat([rows, third[:, None]], 1)
    return rotation, sing.mean(-1, keepdim=True), shift


def _fit_shape(model_pts, bases, rotation, scale, shift, target, weights, prior):
    """Regularised least squares for the coefficients under a fixed camera."""
    proj = scale[:, :, None] * rotation[:, :2]  # (B, 2, 3)
    design = torch.einsum("bij,klj->blik", proj, bases).reshape(target.shape[0], -1, bases.shape[0])
    mean_proj = torch.einsum("bij,lj->bli", proj, model_pts) + shift[:, None]
    residual = (target - mean_proj).reshape(target.shape[0], -1)
    w = weights.repeat_interleave(2)[None, :, None]
    lhs = (design * w).transpose(1, 2) @ (design * w) + torch.diag(prior)
    rhs = (design * w).transpose(1, 2) @ (residual[..., None] * w)
    return torch.linalg.solve(lhs, rhs).squeeze(-1)


def _landmark_bases(model: FaceModel, n_id: int, dense: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """The landmark points' mean (N, 3) and bases (K, N, 3), gathered once per model: the 68
    vertices, then with ``dense`` the 468 surface points."""
    cache = model.__dict__.setdefault("_landmark_bases", {})
    key = (n_id, model.device, model.landmarks.data_ptr(), dense)
    if key not in cache:
        lm = model.landmarks
        bases = torch.cat([model.identity_basis[:n_id], model.expression_basis])
        mean, basis = model.mean[lm], bases[:, lm]
        if dense:
            mean = torch.cat([mean, model.dense_points(model.mean[None])[0]])
            basis = torch.cat([basis, model.dense_points(bases)], 1)
        cache[key] = (mean, basis)
    return cache[key]


def split_points(points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(B, 68, 2) or (B, 68 + 468, 2) points -> the 68 iBUG landmarks and the Face Mesh points."""
    if points.shape[1] not in (68, 68 + 468):
        raise ValueError(f"expected 68 or 68 + 468 points, got {points.shape[1]}")
    return points[:, :68], (points[:, 68:] if points.shape[1] > 68 else None)


@torch.no_grad()
def fit_landmarks(
    model: FaceModel,
    landmarks_ndc: torch.Tensor,
    config: FitConfig | None = None,
    dense_ndc: torch.Tensor | None = None,
) -> LandmarkFit:
    """Fit (B, 68, 2) landmarks in crop NDC (x right, y down) -> LandmarkFit; with ``dense_ndc``
    (B, 468, 2), the Face Mesh points, also those (when the model has their places)."""
    config = config or FitConfig()
    device = landmarks_ndc.device
    batch = landmarks_ndc.shape[0]
    dense = dense_ndc is not None and model.has_dense
    target = _targets(landmarks_ndc, dense_ndc if dense else None)
    weights = _landmark_weights(config, device, model if dense else None)
    n_id = min(config.n_identity, model.n_identity)
    mean, bases = _landmark_bases(model, n_id, dense)
    prior = torch.cat(
        [
            torch.full((n_id,), config.identity_weight, device=device),
            torch.full((model.n_expression,), config.expression_weight, device=device),
        ]
    )
    coeffs = torch.zeros(batch, bases.shape[0], device=device)
    for _ in range(config.iterations):
        shape = mean + torch.einsum("bk,klj->blj", coeffs, bases)
        rotation, scale, shift = _fit_camera(shape, target, weights)
        coeffs = _fit_shape(mean, bases, rotation, scale, shift, target, weights, prior)
        coeffs[:, n_id:] = coeffs[:, n_id:].clamp(0, 1)
    shape = mean + torch.einsum("bk,klj->blj", coeffs, bases)
    rotation, scale, shift = _fit_camera(shape, target, weights)
    projected = torch.einsum("bij,blj->bli", scale[:, :, None] * rotation[:, :2], shape) + shift[:, None]
    rms = (projected - target)[:, :68].pow(2).sum(-1).mean(-1).sqrt()

    identity = torch.zeros(batch, model.n_identity, device=device)
    identity[:, :n_id] = coeffs[:, :n_id]
    rotation = _proper_rotation(rotation)
    return LandmarkFit(
        rotation=matrix_to_euler(rotation),
        translation=shift * shift.new_tensor([1.0, -1.0]),
        scale=scale,
        identity=identity,
        expression=coeffs[:, n_id:],
        rms_error=rms,
    )


def _proper_rotation(rotation: torch.Tensor) -> torch.Tensor:
    """Make det(R) = +1 (the cross product already does; this guards degenerate fits)."""
    det = torch.linalg.det(rotation)
    fix = torch.ones_like(rotation)
    fix[:, 2] = det.sign()[:, None]
    return rotation * fix


def fit_with_identity(
    model: FaceModel, landmarks_ndc: torch.Tensor, identity: torch.Tensor, config: FitConfig | None = None
) -> LandmarkFit:
    """Viewpoint and expression of (B, 68, 2) crop-NDC landmarks for one known ``identity``
    (1, n_identity): the fit of several photos of one person that share a shape."""
    config = config or FitConfig()
    target = landmarks_ndc * landmarks_ndc.new_tensor([1.0, -1.0])
    weights = _landmark_weights(config, landmarks_ndc.device)
    lm = model.landmarks
    neutral = model.mean[lm] + torch.einsum("k,klj->lj", identity[0], model.identity_basis[:, lm])
    bases = model.expression_basis[:, lm]
    prior = torch.full((model.n_expression,), config.expression_weight, device=landmarks_ndc.device)
    expression = torch.zeros(landmarks_ndc.shape[0], model.n_expression, device=landmarks_ndc.device)
    for _ in range(config.iterations):
        rotation, scale, shift = _fit_camera(
            neutral + torch.einsum("bk,klj->blj", expression, bases), target, weights
        )
        expression = _fit_shape(neutral, bases, rotation, scale, shift, target, weights, prior).clamp(0, 1)
    shape = neutral + torch.einsum("bk,klj->blj", expression, bases)
    rotation, scale, shift = _fit_camera(shape, target, weights)
    projected = torch.einsum("bij,blj->bli", scale[:, :, None] * rotation[:, :2], shape) + shift[:, None]
    return LandmarkFit(
        rotation=matrix_to_euler(_proper_rotation(rotation)),
        translation=shift * shift.new_tensor([1.0, -1.0]),
        scale=scale,
        identity=identity.expand(landmarks_ndc.shape[0], -1).clone(),
        expression=expression,
        rms_error=(projected - target).pow(2).sum(-1).mean(-1).sqrt(),
    )
