"""Fine reflectance detail for the CEST albedo, taken from the photo itself.

The networks predict a low-resolution albedo (64 px): the light already removed, but soft. The
photo, unwrapped into UV at full resolution, holds the pores, freckles and brow hairs. We keep the
network's albedo for the low frequencies and multiply in the photo's high-frequency ratio
(texture / its own blur) where the photo sees the surface; unseen texels keep the network's value.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from engine.facemodel import FaceModel
from engine.params import FaceParams
from engine.render.uv import unwrap_texture

RATIO_RANGE = (0.6, 1.6)  # detail may darken or brighten the base albedo this much at most


def low_pass(image: torch.Tensor, resolution: int) -> torch.Tensor:
    """What a ``resolution``-pixel map can hold of ``image``: area-average down, bilinear back up."""
    small = F.adaptive_avg_pool2d(image, resolution)
    return F.interpolate(small, size=image.shape[-2:], mode="bilinear", align_corners=False)


def add_image_detail(params: FaceParams, crops: torch.Tensor, model: FaceModel, size: int):
    """(params with a size x size detailed albedo, visibility (B,1,size,size)) for crops (B,3,S,S)."""
    _, cam, ndc = params.geometry(model)
    texture, visibility = unwrap_texture(crops, ndc, cam, model, size)
    base = F.interpolate(params.albedo, size=(size, size), mode="bilinear", align_corners=False)
    seen = (visibility > 0.2).to(texture.dtype)
    blurred = low_pass(texture * seen, params.albedo.shape[-1]) / low_pass(
        seen, params.albedo.shape[-1]
    ).clamp_min(1e-3)
    ratio = (texture / blurred.clamp_min(1e-3)).clamp(*RATIO_RANGE)
    weight = (visibility.clamp(0, 1) / 0.5).clamp(0, 1) * seen
    albedo = (base * (1 + weight * (ratio - 1))).clamp(0, 1)
    return params.replace(albedo=albedo), visibility
