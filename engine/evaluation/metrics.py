"""Accuracy metrics of a reconstruction against ground truth, per image (batch first).

- :func:`side`: scale-invariant depth error as Unsup3D computes it (``utils.compute_sc_inv_err``):
  on the masked pixels, ``d = pred - gt`` and ``SIDE = sqrt(mean(d^2) - mean(d)^2)``, the standard
  deviation of the difference. Unsup3D applies it to *log* depth (perspective distances), which
  makes it invariant to a global depth scale; on linear depth it is invariant to an offset.
- :func:`ndc_depth_to_distance`: our renderer's depth is weak-perspective NDC z (larger = closer),
  so it has no distance and its offset is arbitrary. To use Unsup3D's log form we turn it into the
  distance a camera like Unsup3D's (field of view 10 degrees, face at distance 1) would see.
- :func:`mad`: mean angle deviation between unit normal maps, degrees.
- :func:`albedo_error`: RMSE after the least-squares per-channel colour scale that best maps the
  prediction onto the truth (albedo and light colour are only known up to that scale).
- :func:`landmark_nme`: mean point-to-point error over 68 points / inter-ocular distance
  (outer eye corners, iBUG points 36 and 45).

Maps are tensors (B, C, H, W); masks (B, 1, H, W), anything > 0.5 counts as inside. Every metric
returns a (B,) tensor; an image with an empty mask gets NaN.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

UNSUP3D_FOV_DEG = 10.0  # Unsup3D's synface camera: fov 10 degrees, face at distance ~1
OUTER_EYE_CORNERS = (36, 45)


def _binary(mask: Tensor) -> Tensor:
    return (mask > 0.5).to(torch.float64)


def erode(mask: Tensor, pixels: int = 1) -> Tensor:
    """Shrink a (B, 1, H, W) mask by ``pixels`` (Unsup3D erodes by one: 3x3 average > 0.99)."""
    out = _binary(mask)
    for _ in range(pixels):
        out = (F.avg_pool2d(out, 3, stride=1, padding=1, count_include_pad=False) > 0.99).to(out.dtype)
    return out


def _masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    """Mean over C, H, W of ``values`` where ``mask`` is set (mask broadcasts over C)."""
    mask = mask.expand_as(values)
    count = mask.flatten(1).sum(1)
    total = (values * mask).flatten(1).sum(1)
    return torch.where(count > 0, total / count.clamp_min(1), torch.full_like(total, math.nan))


def side(pred: Tensor, gt: Tensor, mask: Tensor, log: bool = False) -> Tensor:
    """Scale-invariant depth error (Unsup3D): std of ``pred - gt`` (their logs with ``log``) on the mask."""
    pred, gt, mask = pred.double(), gt.double(), _binary(mask)
    if log:
        if ((pred <= 0) | (gt <= 0))[mask.expand_as(pred) > 0].any():
            raise ValueError("log SIDE needs positive depths (distances) inside the mask")
        pred, gt = pred.clamp_min(1e-12).log(), gt.clamp_min(1e-12).log()
    diff = pred - gt
    mean = _masked_mean(diff, mask)
    var = _masked_mean((diff - mean[:, None, None, None]) ** 2, mask)
    return var.clamp_min(0).sqrt()


def ndc_depth_to_distance(depth_ndc: Tensor, fov_deg: float = UNSUP3D_FOV_DEG) -> Tensor:
    """Weak-perspective NDC depth (larger = closer) -> distance from a camera at distance 1.

    The crop spans [-1, 1] NDC; seen with field of view ``fov`` from distance 1 it spans
    ``2 tan(fov/2)`` world units, so one NDC unit is ``tan(fov/2)`` of the distance, and a point at
    NDC depth z lies at ``1 - tan(fov/2) z``. log of it then differs between two maps by about the
    NDC difference times ``tan(fov/2)``: SIDE on these distances is on Unsup3D's scale.
    """
    return 1.0 - math.tan(math.radians(fov_deg) / 2) * depth_ndc.double()


def mad(pred_normals: Tensor, gt_normals: Tensor, mask: Tensor) -> Tensor:
    """Mean angle deviation (degrees) between (B, 3, H, W) normal maps on the mask."""
    p = F.normalize(pred_normals.double(), dim=1, eps=1e-12)
    g = F.normalize(gt_normals.double(), dim=1, eps=1e-12)
    angle = torch.rad2deg(torch.acos((p * g).sum(1, keepdim=True).clamp(-1, 1)))
    return _masked_mean(angle, _binary(mask))


def colour_scale(pred: Tensor, gt: Tensor, mask: Tensor) -> Tensor:
    """(B, C) least-squares per-channel scales k minimising ``|k pred - gt|^2`` on the mask."""
    pred, gt, mask = pred.double(), gt.double(), _binary(mask)
    num = (pred * gt * mask).flatten(2).sum(2)
    den = (pred * pred * mask).flatten(2).sum(2)
    return torch.where(den > 0, num / den.clamp_min(1e-12), torch.ones_like(num))


def albedo_error(pred: Tensor, gt: Tensor, mask: Tensor, per_channel: bool = True) -> Tensor:
    """RMSE of (B, 3, H, W) albedo maps on the mask after the best global colour scale.

    ``per_channel``: one scale per colour channel (the light's colour is ambiguous too); else one
    scale for all channels.
    """
    pred, gt, mask = pred.double(), gt.double(), _binary(mask)
    if per_channel:
        k = colour_scale(pred, gt, mask)[:, :, None, None]
    else:
        mask3 = mask.expand_as(pred)
        k = colour_scale(pred.flatten(1)[:, None], gt.flatten(1)[:, None], mask3.flatten(1)[:, None])
        k = k[:, :, None, None]
    return _masked_mean((k * pred - gt) ** 2, mask).sqrt()


def inter_ocular(landmarks: Tensor) -> Tensor:
    """(B, 68, 2) -> (B,) distance between the outer eye corners (iBUG 36 and 45)."""
    a, b = OUTER_EYE_CORNERS
    return (landmarks[:, a] - landmarks[:, b]).norm(dim=-1)


def landmark_nme(pred: Tensor, gt: Tensor, normaliser: Tensor | None = None) -> Tensor:
    """Mean point-to-point error of (B, 68, 2) landmarks over the inter-ocular distance of ``gt``."""
    pred, gt = torch.as_tensor(pred).double(), torch.as_tensor(gt).double()
    if pred.dim() == 2:
        pred, gt = pred[None], gt[None]
    norm = inter_ocular(gt) if normaliser is None else torch.as_tensor(normaliser).double()
    return (pred - gt).norm(dim=-1).mean(-1) / norm


def shading_in_albedo(pred: Tensor, gt: Tensor, shading: Tensor, mask: Tensor) -> Tensor:
    """(B,) how much of the true shading a predicted albedo holds: the slope of log(pred / gt) on
    log(shading), luminance, over the mask (1: the shading baked into the albedo, 0: none; NaN
    where the light hardly varies over the face)."""

    def log_luminance(x: Tensor) -> Tensor:
        return x.double().mean(1, keepdim=True).clamp_min(1e-3).log()

    mask = _binary(mask).double()
    ratio, light = log_luminance(pred) - log_luminance(gt), log_luminance(shading)
    count = mask.flatten(1).sum(1).clamp_min(1)
    centre = lambda x: x - ((x * mask).flatten(1).sum(1) / count).reshape(-1, 1, 1, 1)  # noqa: E731
    ratio, light = centre(ratio), centre(light)
    variance = (light * light * mask).flatten(1).sum(1) / count
    slope = (ratio * light * mask).flatten(1).sum(1) / count / variance.clamp_min(1e-12)
    return torch.where(variance > 1e-4, slope, torch.full_like(slope, float("nan")))
