"""Split an unwrapped texture into SH light and albedo: the landmark-fit baseline's albedo, and what
the CEST chain's reflectance estimator sees with ``delit_unwrap``.

Assumes the reflectance varies little over the face compared with the light, so a 9x3 SH fit of
the texel colours against their normals explains the light; albedo = texture / shading.
"""

from __future__ import annotations

import torch

from engine.sh import SH_CONST, ambient_light, sh_basis, sh_shading


def fit_sh_light(texture: torch.Tensor, normals: torch.Tensor, weight: torch.Tensor, ridge: float = 1e-3):
    """Weighted least squares of (B,3,T,T) colours on the SH basis of (B,3,T,T) normals -> (B,9,3)."""
    basis = sh_basis(normals.permute(0, 2, 3, 1)).flatten(1, 2)  # (B, N, 9)
    colours = texture.permute(0, 2, 3, 1).flatten(1, 2)  # (B, N, 3)
    w = weight.flatten(1)[..., None]
    lhs = (basis * w).transpose(1, 2) @ basis + ridge * torch.eye(9, device=basis.device)
    rhs = (basis * w).transpose(1, 2) @ colours
    return torch.linalg.solve(lhs, rhs)


def grey_light(light: torch.Tensor) -> torch.Tensor:
    """The fitted (B,9,3) light made colourless: every channel gets the channel-average shape.

    Per-channel shapes would push colour variations of the skin into the light (a green cast
    on one cheek); the albedo keeps the skin's colour instead.
    """
    dc = light[:, :1] * SH_CONST[0]  # (B, 1, 3) mean shaded colour per channel
    shape = (light / dc.clamp_min(1e-2)).mean(-1, keepdim=True)  # (B, 9, 1)
    return (shape * dc.mean(-1, keepdim=True)).expand_as(light).contiguous()


def _scale_and_check(shading: torch.Tensor, seen: torch.Tensor, peak: float):
    """Per face: the level that gives the best-lit seen texels shading 1, and whether the light,
    scaled by it, shades the seen face positively and finitely.

    Albedo scale and light intensity are ambiguous; making the brightest skin (the ``peak``
    quantile) fully lit is a plausible, readable split. A fit can go wild when few texels are
    seen or the unwrap caught the background (a turned face): its shading then crosses zero on
    the face and the division would explode, so such a face gets the ambient fallback.
    """
    levels, ok = [], []
    for face_shading, face_seen in zip(shading, seen):
        values = face_shading[face_seen]
        if not values.numel() or not torch.isfinite(values).all():
            levels.append(1.0)
            ok.append(False)
            continue
        level = max(float(torch.quantile(values, peak)), 1e-3)
        levels.append(level)
        ok.append(float(torch.quantile(values, 0.05)) / level > 0.05)
    return shading.new_tensor(levels), torch.tensor(ok, device=shading.device)


def delight(texture, normals, visibility, peak: float = 0.9):
    """(albedo (B,3,T,T) in [0,1], light (B,9,3)) from an unwrapped texture and its UV-space normals."""
    light = grey_light(fit_sh_light(texture, normals, visibility))
    shading = sh_shading(normals.permute(0, 2, 3, 1), light).permute(0, 3, 1, 2)  # grey: channels equal
    levels, ok = _scale_and_check(shading[:, 0], visibility[:, 0] > 0.3, peak)
    fallback = ambient_light(light.shape[0], device=light.device)  # shading 1: the texture stays as seen
    light = torch.where(ok[:, None, None], light / levels[:, None, None], fallback)
    shading = torch.where(
        ok[:, None, None, None], shading / levels[:, None, None, None], torch.ones_like(shading)
    )
    albedo = texture / shading.clamp_min(0.15)
    return albedo.clamp(0, 1) * (visibility > 0), light
