"""Landmark fit: viewpoint, identity and expression from 68 2D landmarks, no trained weights.

Alternates two linear solves (a few ms): a scaled-orthographic camera for the current shape
(affine least squares, then the nearest scaled rotation), and regularised least squares for
the shape coefficients under that camera. Expressions are held in their [0, 1] range (an exact
box-constrained solve), and the 17 jaw points slide to the visible outline (engine/contour.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from engine.camera import matrix_to_euler
from engine.contour import outward_in_view
from engine.facemodel import FaceModel


@dataclass
class FitConfig:
    iterations: int = 4
    n_identity: int = 40  # 68 points cannot pin more modes than this down
    identity_weight: float = 3e-4  # prior strength, in squared NDC per unit coefficient
    expression_weight: float = 1e-3  # stronger than 3e-4: fewer blendshapes fitting the points' noise
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


def _fit_shape(model_pts, bases, rotation, scale, shift, target, weights, prior, clamp_from, held=None):
    """Regularised least squares for the coefficients under a fixed camera; the points (B, N, 3)
    and their bases (B, N, 3, K) are each face's own (its jaw points slide)."""
    proj = scale[:, :, None] * rotation[:, :2]  # (B, 2, 3)
    design = (proj[:, None] @ bases).reshape(target.shape[0], -1, bases.shape[-1])  # (B, 2N, K)
    mean_proj = model_pts @ proj.transpose(1, 2) + shift[:, None]
    residual = (target - mean_proj).reshape(target.shape[0], -1)
    w = weights.repeat_interleave(2)[None, :, None]
    lhs = (design * w).transpose(1, 2) @ (design * w) + torch.diag(prior)
    rhs = (design * w).transpose(1, 2) @ (residual[..., None] * w)
    return box_least_squares(lhs, rhs.squeeze(-1), clamp_from, held)


def box_least_squares(
    lhs: torch.Tensor, rhs: torch.Tensor, clamp_from: int, held: tuple | None = None, rounds: int = 12
) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """argmin ``x·A·x/2 - b·x`` for (B, K, K) positive definite A and (B, K) b, with x[clamp_from:]
    in [0, 1], by an active set: variables that leave the box are held at the bound they crossed,
    and let go where the gradient points back inside. ``held``: the (at 0, at 1) masks to start
    from (the last solve's, returned with x). Solving freely and clamping afterwards is not a
    descent step: the fit's error then grows with every iteration."""
    boxed = torch.zeros(lhs.shape[-1], dtype=torch.bool, device=lhs.device)
    boxed[clamp_from:] = True
    at_low, at_high = held if held is not None else (torch.zeros_like(boxed), torch.zeros_like(boxed))
    at_low, at_high = at_low.expand_as(rhs), at_high.expand_as(rhs)
    for _ in range(rounds):
        x = _solve_held(lhs, rhs, at_low, at_high)
        grad = (lhs @ x[..., None])[..., 0] - rhs
        inside = ~(at_low | at_high)
        low = boxed & ((at_low & (grad > 0)) | (inside & (x < 0)))
        high = boxed & ((at_high & (grad < 0)) | (inside & (x > 1)))
        if torch.equal(low, at_low) and torch.equal(high, at_high):
            break
        at_low, at_high = low, high
    return torch.where(boxed, x.clamp(0, 1), x), (at_low, at_high)


def _solve_held(lhs, rhs, at_low, at_high) -> torch.Tensor:
    """The minimum with the held variables at their bounds (0 or 1) and the rest free."""
    held = at_low | at_high
    value = at_high.to(rhs.dtype)
    free = (~held).to(rhs.dtype)
    reduced = lhs * free[:, :, None] * free[:, None, :] + torch.diag_embed(held.to(rhs.dtype))
    moved = rhs - (lhs @ value[..., None])[..., 0]
    return torch.linalg.solve(reduced, torch.where(held, value, moved))


@dataclass
class _Shapes:
    """The shape space of the vertices a landmark can be (the 68 and the jaw lines', a few hundred
    of the mesh): ``mean + bases @ coeffs``; optionally the Face Mesh points too, which do not slide."""

    mean: torch.Tensor  # (M, 3)
    bases: torch.Tensor  # (M, 3, K)
    local: torch.Tensor  # (V,) each mesh vertex's row in ``mean``, -1 where it is none
    dense_mean: torch.Tensor | None = None  # (468, 3)
    dense_bases: torch.Tensor | None = None  # (468, 3, K)

    @classmethod
    def of(cls, model: FaceModel, mean: torch.Tensor, bases: torch.Tensor, dense: bool = False) -> _Shapes:
        """From the whole mesh's (V, 3) mean and (K, V, 3) bases."""
        rows = torch.unique(torch.cat([model.landmarks, model.jaw_lines.vertices.reshape(-1)]))
        local = torch.full((model.n_vertices,), -1, dtype=torch.long, device=rows.device)
        local[rows] = torch.arange(len(rows), device=rows.device)
        space = cls(mean[rows], bases[:, rows].permute(1, 2, 0).contiguous(), local)
        if dense:
            space.dense_mean = model.dense_points(mean[None])[0]
            space.dense_bases = model.dense_points(bases).permute(1, 2, 0).contiguous()
        return space

    def points(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 68) landmark vertices (mesh ids) -> their (B, N, 3) mean and (B, N, 3, K) bases
        (N = 68, or 68 + 468 with the dense points)."""
        rows = self.local[ids]
        mean, bases = self.mean[rows], self.bases[rows]
        if self.dense_mean is not None and self.dense_bases is not None:
            batch = ids.shape[0]
            mean = torch.cat([mean, self.dense_mean.expand(batch, -1, -1)], 1)
            bases = torch.cat([bases, self.dense_bases.expand(batch, -1, -1, -1)], 1)
        return mean, bases

    def shape(self, ids: torch.Tensor, coeffs: torch.Tensor) -> torch.Tensor:
        mean, bases = self.points(ids)
        return mean + (bases @ coeffs[:, None, :, None])[..., 0]

    def shared(self, vertices: torch.Tensor, coeffs: torch.Tensor) -> torch.Tensor:
        """(N,) mesh vertices, the same for every face -> (B, N, 3) under (B, K) ``coeffs``."""
        rows = self.local[vertices]
        return self.mean[rows] + (self.bases[rows] @ coeffs[:, None, :, None])[..., 0]


def _slide(model: FaceModel, space: _Shapes, coeffs: torch.Tensor, rotation: torch.Tensor) -> torch.Tensor:
    """(B, 68) landmark vertices with the jaw points on the contour of the current shape and view."""
    lines = model.jaw_lines.vertices
    on_lines = space.shared(lines.reshape(-1), coeffs)
    xy = (on_lines @ rotation.transpose(1, 2))[..., :2].reshape(coeffs.shape[0], *lines.shape, 2)
    return model.sliding_indices(xy, outward_in_view(model.jaw_lines, rotation))


def _solve(model, space, target, weights, prior, clamp_from, iterations):
    """Alternate the camera and the coefficients, the jaw points sliding with the view; the
    coefficients from ``clamp_from`` on are blendshape weights in [0, 1]."""
    batch = target.shape[0]
    ids = model.landmarks.expand(batch, -1)
    coeffs = torch.zeros(batch, space.bases.shape[-1], device=target.device)
    held = None  # the blendshapes at a bound, carried from one solve to the next
    for _ in range(iterations):
        rotation, scale, shift = _fit_camera(space.shape(ids, coeffs), target, weights)
        ids = _slide(model, space, coeffs, rotation)
        mean, bases = space.points(ids)
        coeffs, held = _fit_shape(
            mean, bases, rotation, scale, shift, target, weights, prior, clamp_from, held
        )
    shape = space.shape(ids, coeffs)
    rotation, scale, shift = _fit_camera(shape, target, weights)
    projected = torch.einsum("bij,blj->bli", scale[:, :, None] * rotation[:, :2], shape) + shift[:, None]
    rms = (projected - target)[:, :68].pow(2).sum(-1).mean(-1).sqrt()
    return coeffs, rotation, scale, shift, rms


def _model_space(model: FaceModel, n_id: int, dense: bool) -> _Shapes:
    """The identity (first ``n_id`` modes) and expression space of the model, gathered once."""
    cache = model.__dict__.setdefault("_fit_spaces", {})
    key = (n_id, model.device, dense)
    if key not in cache:
        bases = torch.cat([model.identity_basis[:n_id], model.expression_basis])
        cache[key] = _Shapes.of(model, model.mean, bases, dense)
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
    prior = torch.cat(
        [
            torch.full((n_id,), config.identity_weight, device=device),
            torch.full((model.n_expression,), config.expression_weight, device=device),
        ]
    )
    space = _model_space(model, n_id, dense)
    coeffs, rotation, scale, shift, rms = _solve(
        model, space, target, weights, prior, n_id, config.iterations
    )
    identity = torch.zeros(batch, model.n_identity, device=device)
    identity[:, :n_id] = coeffs[:, :n_id]
    return LandmarkFit(
        rotation=matrix_to_euler(_proper_rotation(rotation)),
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
    device = landmarks_ndc.device
    target = landmarks_ndc * landmarks_ndc.new_tensor([1.0, -1.0])
    weights = _landmark_weights(config, device)
    neutral = model.mean + torch.einsum("k,kvj->vj", identity[0], model.identity_basis)
    space = _Shapes.of(model, neutral, model.expression_basis)
    prior = torch.full((model.n_expression,), config.expression_weight, device=device)
    expression, rotation, scale, shift, rms = _solve(
        model, space, target, weights, prior, 0, config.iterations
    )
    return LandmarkFit(
        rotation=matrix_to_euler(_proper_rotation(rotation)),
        translation=shift * shift.new_tensor([1.0, -1.0]),
        scale=scale,
        identity=identity.expand(landmarks_ndc.shape[0], -1).clone(),
        expression=expression,
        rms_error=rms,
    )
