"""CEST's training losses: photometric (own, swapped and flipped reflectance), landmarks, priors.

The clip's consistency holds for shape too: with ``shape_swap`` each frame's 68 landmarks must
also be met by the identity of its partner frame (its own expression and viewpoint), so an
identity that explains only one photo of a person costs as much as a wrong one. With
``identity_contrast`` the neutral shapes (identity only) of one clip's frames must lie closer to
each other than to the other clips' (the ratio of the mean squared distances, so shrinking every
identity alike does not pay, unlike the shape swap; pushing people apart does, so a strong weight
exaggerates the shapes: resources/weights/README.md has the measured trade). Only real clips count
unless ``identity_contrast_synthetic``: the synthetic ones hold the prior's random identities, and
pushing those apart taught nothing of people. ``albedo_contrast`` asks the same of the albedo
maps (each scaled to one mean brightness), on real clips only.

The renderer rasterises each frame once; the swapped and flipped reflectances re-texture that
same render (:func:`engine.render.shade`), so the three photometric terms cost one rasterisation.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
from torch import Tensor

from engine.facemodel import FaceModel
from engine.params import FaceParams
from engine.render import Renderer, RenderOutput, shade
from engine.render.uv import chart_brightness_normalised, uv_layout
from engine.sh import SH_CONST

_EPS = 1e-3  # Charbonnier epsilon: a smooth L1 whose gradient stays finite at zero error


@dataclass
class LossWeights:
    photometric: float = 1.0  # own reflectance
    swap: float = 1.0  # reflectance of another frame of the same clip
    symmetry: float = 0.5  # own reflectance flipped in UV
    landmark: float = 1.0
    identity: float = 1e-3  # ||identity||^2 (mean over coefficients)
    expression: float = 1e-3  # ||expression||^2
    light: float = 0.05  # light prior: near white, mean shading near 1 (see light_prior)
    supervised: float = 0.0  # ground truth of synthetic faces, where present (warm start only)
    landmark_jaw: float = 0.5  # relative weight of the 17 contour points, which slide as the head turns
    shape_swap: float = 0.0  # landmarks met with another frame's identity (same clip, own expression)
    identity_contrast: float = 0.0  # within-clip / between-clip spread of the neutral shapes
    # the synthetic clips count in the identity contrast too (as in stages 12-14); by default only
    # real clips do: pushing the prior's random identities apart only exaggerated the shapes
    identity_contrast_synthetic: bool = False
    albedo_contrast: float = 0.0  # the same for the albedo maps (real clips only)
    # share of the supervised geometry term taken in the predicted viewpoint (1) rather than with the
    # predicted shape placed in the true viewpoint (0: the synthetic truth teaches shape, not pose)
    supervised_viewpoint: float = 1.0

    @classmethod
    def from_dict(cls, values: dict) -> LossWeights:
        unknown = set(values) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown loss keys: {sorted(unknown)}")
        if not 0 <= values.get("supervised_viewpoint", 1.0) <= 1:
            raise ValueError("losses.supervised_viewpoint must lie in [0, 1]")
        return cls(**values)

    def to_dict(self) -> dict:
        return asdict(self)


def charbonnier(x: Tensor, dim: int) -> Tensor:
    """Euclidean norm over ``dim``, smoothed at zero."""
    return (x.square().sum(dim) + _EPS**2).sqrt() - _EPS


def photometric_loss(rendered: Tensor, target: Tensor, mask: Tensor) -> Tensor:
    """Mean per-pixel RGB error over the mask. (B,3,H,W), (B,3,H,W), (B,1,H,W) -> scalar."""
    err = charbonnier(rendered - target, 1).unsqueeze(1)
    return (err * mask).sum() / mask.sum().clamp_min(1.0)


def landmark_loss(
    projected: Tensor, target: Tensor, jaw_weight: float = 0.5, valid: Tensor | None = None
) -> Tensor:
    """Mean weighted distance of (B, 68, 2) projected landmarks to the detected ones, in NDC."""
    weights = projected.new_ones(68)
    weights[:17] = jaw_weight
    dist = charbonnier(projected - target, -1) * weights
    if valid is not None:
        dist = dist * valid[:, None]
        return dist.sum() / (valid.sum() * weights.sum()).clamp_min(1.0)
    return dist.sum() / (dist.shape[0] * weights.sum())


def coefficient_loss(coeffs: Tensor) -> Tensor:
    """||α||² per face, averaged over coefficients and faces."""
    return coeffs.square().mean()


def light_prior(light: Tensor) -> Tensor:
    """Penalise tinted light and a mean shading far from 1.

    Albedo x shading is all the photometric losses see, so the split of colour and brightness
    between them is free; this prior gives colour and brightness to the albedo.
    """
    grey = light.mean(-1, keepdim=True)
    tint = (light - grey).square().mean()
    level = (grey[:, 0, 0] * SH_CONST[0] - 1).square().mean()
    return tint + level


def symmetry_albedo(albedo: Tensor) -> Tensor:
    """The mirror of a UV albedo map: the face model's UVs are mirror-symmetric about u = 0.5."""
    return albedo.flip(-1)


def swap_partners(clip_ids: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """For each frame, the index of another frame of the same clip (itself when alone)."""
    partner = torch.arange(len(clip_ids), device=clip_ids.device)
    for clip in clip_ids.unique():
        members = (clip_ids == clip).nonzero().squeeze(1)
        if len(members) > 1:
            shift = int(torch.randint(1, len(members), (1,), generator=generator))
            partner[members] = members.roll(shift)
    return partner


def identity_contrast(identity: Tensor, clip_ids: Tensor, model: FaceModel) -> Tensor:
    """Mean squared vertex distance between the neutral shapes of two frames of one clip, over
    that of two frames of different clips; 0 when the batch has no such pairs."""
    neutral = model.vertices(identity, identity.new_zeros(len(identity), model.n_expression))
    return _contrast_ratio(neutral.flatten(1), clip_ids)


def albedo_contrast(albedo: Tensor, clip_ids: Tensor, model: FaceModel) -> Tensor:
    """The same ratio for the albedo maps on the UV chart, each scaled to one mean brightness
    (as ``cest eval --same-person`` compares them): the pattern counts, not the exposure."""
    chart = uv_layout(model, albedo.shape[-1])[2].to(albedo)
    return _contrast_ratio(chart_brightness_normalised(albedo, chart).flatten(1), clip_ids)


def _contrast_ratio(features: Tensor, clip_ids: Tensor) -> Tensor:
    """Mean squared distance of (B, D) features within a clip over that between clips."""
    features = features - features.mean(0, keepdim=True)  # distances unchanged; less cancellation
    sq = features.square().sum(1)
    dist2 = (sq[:, None] + sq[None] - 2 * features @ features.T).clamp_min(0)
    same = clip_ids[:, None] == clip_ids[None]
    within = same & ~torch.eye(len(clip_ids), dtype=torch.bool, device=clip_ids.device)
    if not within.any() or same.all():
        return features.new_zeros(())
    return dist2[within].mean() / (dist2[~same].mean() + 1e-12)


def contrast_frames(batch: dict[str, Tensor], synthetic: bool) -> Tensor:
    """(B,) bool: the frames a contrast compares (the real ones unless ``synthetic``)."""
    every = torch.ones_like(batch["clip_id"], dtype=torch.bool)
    return every if synthetic or "gt_has" not in batch else ~batch["gt_has"].bool()


@dataclass
class LossResult:
    total: Tensor
    terms: dict[str, Tensor]  # each weighted term's unweighted value
    render: RenderOutput  # own-reflectance render, for pictures


def render_params(
    params: FaceParams, model: FaceModel, renderer: Renderer, size: int
) -> tuple[RenderOutput, Tensor]:
    """Render FaceParams at ``size``; also return the crop-NDC vertices."""
    _, cam, ndc = params.geometry(model)
    return renderer.render(cam, ndc, params.albedo, params.light, size), ndc


def cest_losses(
    params: FaceParams,
    batch: dict[str, Tensor],
    model: FaceModel,
    renderer: Renderer,
    weights: LossWeights,
    partner: Tensor,
) -> LossResult:
    """All losses of one batch. ``batch`` holds image (B,3,S,S), face_mask (B,1,S,S),
    landmarks (B,68,2) in crop NDC, optionally landmarks_valid (B,) and synthetic ground truth."""
    image = batch["image"]
    size = image.shape[-1]
    out, ndc = render_params(params, model, renderer, size)
    mask = out.mask * batch["face_mask"]
    terms = {"photometric": photometric_loss(out.image, image, mask)}
    if weights.swap:
        swapped = shade(out, params.albedo[partner], params.light)
        terms["swap"] = photometric_loss(swapped.image, image, mask)
    if weights.symmetry:
        flipped = shade(out, symmetry_albedo(params.albedo), params.light)
        terms["symmetry"] = photometric_loss(flipped.image, image, mask)
    terms["landmark"] = landmark_term(ndc, params.rotation, batch, model, weights)
    if weights.shape_swap:
        # each frame drawn with its partner frame's identity coefficients
        _, _, swapped_ndc = params.replace(identity=params.identity[partner]).geometry(model)
        terms["shape_swap"] = landmark_term(swapped_ndc, params.rotation, batch, model, weights)
    if weights.identity_contrast:
        keep = contrast_frames(batch, weights.identity_contrast_synthetic)
        terms["identity_contrast"] = identity_contrast(params.identity[keep], batch["clip_id"][keep], model)
    if weights.albedo_contrast:
        keep = contrast_frames(batch, synthetic=False)
        terms["albedo_contrast"] = albedo_contrast(params.albedo[keep], batch["clip_id"][keep], model)
    terms["identity"] = coefficient_loss(params.identity)
    terms["expression"] = coefficient_loss(params.expression)
    if weights.light:
        terms["light"] = light_prior(params.light)
    if weights.supervised and "gt_has" in batch and bool(batch["gt_has"].any()):
        terms["supervised"] = supervised_loss(params, ndc, batch, model, weights.supervised_viewpoint)
    total = sum(getattr(weights, name) * value for name, value in terms.items())
    return LossResult(total, terms, out)


def landmark_term(
    ndc: Tensor, rotation: Tensor, batch: dict[str, Tensor], model: FaceModel, weights: LossWeights
) -> Tensor:
    """The landmark loss of (B, V, 3) crop-NDC vertices, seen with the (B, 3) Euler ``rotation``
    (the jaw points slide to the contour), against the batch's detected landmarks."""
    projected = model.landmark_vertices(ndc, rotation)[..., :2]
    return landmark_loss(projected, batch["landmarks"], weights.landmark_jaw, batch.get("landmarks_valid"))


def supervised_loss(
    params: FaceParams, ndc: Tensor, batch: dict[str, Tensor], model: FaceModel, viewpoint: float = 1.0
) -> Tensor:
    """Distance to the ground truth of synthetic faces: geometry (NDC vertices), albedo, light.
    viewpoint: the share of the geometry term measured in the predicted viewpoint; the rest places
    the predicted shape in the true viewpoint, so it teaches shape only."""
    has = batch["gt_has"].bool()
    truth = FaceParams(**{f.name: batch[f"gt_{f.name}"][has] for f in fields(FaceParams)})
    _, _, gt_ndc = truth.geometry(model)
    geometry = viewpoint * charbonnier(ndc[has] - gt_ndc, -1).mean() if viewpoint else 0.0
    if viewpoint < 1:
        posed = params.select(has).replace(
            rotation=truth.rotation, translation=truth.translation, scale=truth.scale
        )
        geometry = geometry + (1 - viewpoint) * charbonnier(posed.geometry(model)[2] - gt_ndc, -1).mean()
    albedo = (params.albedo[has] - truth.albedo).abs().mean()
    light = (params.light[has] - truth.light).abs().mean()
    return geometry * 10 + albedo + light * 0.1
