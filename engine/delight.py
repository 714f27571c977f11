"""Split an unwrapped texture into SH light and albedo, for the landmark-fit baseline.

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


def normalised(light, normals, visibility, peak: float = 0.9) -> torch.Tensor:
    """Scale the light so the best-lit visible texels get shading 1.

    Albedo scale and light intensity are ambiguous; this makes the brightest skin fully lit
    (the ``peak`` quantile of the shading over visible texels), a plausible and readable split.
    """
    shading = sh_shading(normals.permute(0, 2, 3, 1), light).mean(-1)  # (B, T, T)
    levels = torch.stack([
        torch.quantile(s[v[0] > 0.3], peak) if (v[0] > 0.3).any() else s.new_tensor(1.0)
        for s, v in zip(shading, visibility)
    ])
    return light / levels.clamp_min(1e-3)[:, None, None]


def plausible(light, normals, visibility) -> torch.Tensor:
    """(B,) True where a fitted light shades the seen face positively and finitely.

    A fit can go wild when few texels are seen or the unwrap caught the background (a turned
    face): its shading then crosses zero on the face and the division explodes.
    """
    shading = sh_shading(normals.permute(0, 2, 3, 1), light).mean(-1)
    ok = []
    for s, v in zip(shading, visibility):
        seen = s[v[0] > 0.3]
        ok.append(bool(seen.numel()) and bool(torch.isfinite(seen).all()) and float(torch.quantile(seen, 0.05)) > 0.05)
    return torch.tensor(ok, device=light.device)


def delight(texture, normals, visibility):
    """(albedo (B,3,T,T) in [0,1], light (B,9,3)) from an unwrapped texture and its UV-space normals."""
    light = normalised(grey_light(fit_sh_light(texture, normals, visibility)), normals, visibility)
    fallback = ambient_light(light.shape[0], device=light.device)  # the texture stays as seen
    light = torch.where(plausible(light, normals, visibility)[:, None, None], light, fallback)
    shading = sh_shading(normals.permute(0, 2, 3, 1), light).permute(0, 3, 1, 2)
    albedo = texture / shading.clamp_min(0.15)
    return albedo.clamp(0, 1) * (visibility > 0), light
