"""Split an unwrapped texture into SH light and albedo, for the landmark-fit baseline.

Assumes the reflectance varies little over the face compared with the light, so a 9x3 SH fit of
the texel colours against their normals explains the light; albedo = texture / shading.
"""

from __future__ import annotations

import torch

from engine.sh import SH_CONST, sh_basis


def fit_sh_light(texture: torch.Tensor, normals: torch.Tensor, weight: torch.Tensor, ridge: float = 1e-3):
    """Weighted least squares of (B,3,T,T) colours on the SH basis of (B,3,T,T) normals -> (B,9,3)."""
    basis = sh_basis(normals.permute(0, 2, 3, 1)).flatten(1, 2)  # (B, N, 9)
    colours = texture.permute(0, 2, 3, 1).flatten(1, 2)  # (B, N, 3)
    w = weight.flatten(1)[..., None]
    lhs = (basis * w).transpose(1, 2) @ basis + ridge * torch.eye(9, device=basis.device)
    rhs = (basis * w).transpose(1, 2) @ colours
    return torch.linalg.solve(lhs, rhs)


def white_balanced(light: torch.Tensor, albedo_level: float = 0.6) -> torch.Tensor:
    """Rescale a fitted (B,9,3) light so its shading averages 1/albedo_level of the colours and is grey.

    The fit leaves albedo scale and light intensity ambiguous; we give the light the colours'
    mean brightness over ``albedo_level`` and no tint, so the albedo keeps the skin's colour.
    """
    dc = light[:, :1] * SH_CONST[0]  # (B, 1, 3) mean shaded colour
    grey = light / dc.clamp_min(1e-4) * dc.mean(-1, keepdim=True)
    return grey / albedo_level


def delight(texture, normals, visibility, albedo_level: float = 0.6):
    """(albedo (B,3,T,T) in [0,1], light (B,9,3)) from an unwrapped texture and its UV-space normals."""
    light = white_balanced(fit_sh_light(texture, normals, visibility), albedo_level)
    shading = (sh_basis(normals.permute(0, 2, 3, 1)) @ light).permute(0, 3, 1, 2)
    albedo = texture / shading.clamp_min(0.15)
    return albedo.clamp(0, 1) * (visibility > 0), light
