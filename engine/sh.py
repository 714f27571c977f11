"""Second-order spherical-harmonics shading (DECA's constants, Lambertian attenuation folded in)."""

import math

import torch

_PI = math.pi
SH_CONST = (
    1 / math.sqrt(4 * _PI),
    (2 * _PI / 3) * math.sqrt(3 / (4 * _PI)),
    (2 * _PI / 3) * math.sqrt(3 / (4 * _PI)),
    (2 * _PI / 3) * math.sqrt(3 / (4 * _PI)),
    (_PI / 4) * 3 * math.sqrt(5 / (12 * _PI)),
    (_PI / 4) * 3 * math.sqrt(5 / (12 * _PI)),
    (_PI / 4) * 3 * math.sqrt(5 / (12 * _PI)),
    (_PI / 4) * (3 / 2) * math.sqrt(5 / (12 * _PI)),
    (_PI / 4) * (1 / 2) * math.sqrt(5 / (4 * _PI)),
)


def sh_basis(normals: torch.Tensor) -> torch.Tensor:
    """(..., 3) unit normals -> (..., 9) SH basis values, constants included."""
    x, y, z = normals.unbind(-1)
    one = torch.ones_like(x)
    basis = torch.stack([one, x, y, z, x * y, x * z, y * z, x * x - y * y, 3 * z * z - 1], dim=-1)
    return basis * basis.new_tensor(SH_CONST)


def sh_shading(normals: torch.Tensor, light: torch.Tensor) -> torch.Tensor:
    """Shading of unit normals (B, ..., 3) under SH light (B, 9, 3) -> (B, ..., 3)."""
    basis = sh_basis(normals)
    batch = light.shape[0]
    flat = basis.reshape(batch, -1, 9)
    return (flat @ light).reshape(*normals.shape[:-1], 3)


def ambient_light(batch: int = 1, intensity: float = 1.0, device=None) -> torch.Tensor:
    """White ambient SH light whose shading equals `intensity` everywhere."""
    light = torch.zeros(batch, 9, 3, device=device)
    light[:, 0, :] = intensity / SH_CONST[0]
    return light
