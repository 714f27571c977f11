"""Light as people think of it (direction, intensity, ambient, colour) <-> SH coefficients."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from engine.sh import SH_CONST, sh_basis


@dataclass
class LightSettings:
    azimuth_deg: float = 0.0  # 0 = from the camera, +90 = from the viewer's right
    elevation_deg: float = 0.0  # +90 = from above
    intensity: float = 0.7  # directional part
    ambient: float = 0.5
    color: tuple[float, float, float] = (1.0, 1.0, 1.0)


PRESETS: dict[str, LightSettings] = {
    "Studio": LightSettings(20, 25, 0.6, 0.55),
    "Front": LightSettings(0, 0, 0.5, 0.6),
    "Left key": LightSettings(-60, 20, 0.9, 0.3),
    "Right key": LightSettings(60, 20, 0.9, 0.3),
    "Top": LightSettings(0, 70, 0.9, 0.3),
    "Rim": LightSettings(150, 10, 0.9, 0.25),
    "Warm sunset": LightSettings(-45, 10, 0.8, 0.35, (1.0, 0.78, 0.55)),
    "Cool moon": LightSettings(40, 45, 0.6, 0.3, (0.7, 0.8, 1.0)),
}


def light_direction(azimuth_deg: float, elevation_deg: float) -> torch.Tensor:
    """Unit vector toward the light in camera space (x right, y up, z toward the viewer)."""
    az, el = math.radians(azimuth_deg), math.radians(elevation_deg)
    return torch.tensor([math.sin(az) * math.cos(el), math.sin(el), math.cos(az) * math.cos(el)])


def settings_to_sh(settings: LightSettings) -> torch.Tensor:
    """(1, 9, 3) SH light: ambient plus the order-2 projection of a directional light.

    A delta light from ``d`` has SH coefficients y_k(d); with the Lambertian attenuations that
    engine.sh folds into its basis, shading ≈ intensity · max(n·d, 0) + ambient.
    """
    direction = light_direction(settings.azimuth_deg, settings.elevation_deg)
    coeffs = settings.intensity * sh_basis(direction[None])[0] * _LOBE_SCALE
    coeffs[0] = coeffs[0] + settings.ambient / SH_CONST[0]
    color = torch.tensor(settings.color, dtype=torch.float32)
    return (coeffs[:, None] * color[None, :])[None].float()


# DECA's band-0 constant carries no Lambertian factor while bands 1 and 2 carry 2π/3 and π/4, so the
# delta light's coefficients are the basis times π (band 0) or over the band's attenuation.
_LOBE_SCALE = torch.tensor([math.pi] + [3 / (2 * math.pi)] * 3 + [4 / math.pi] * 5)


def shading_of(light: torch.Tensor, normal: torch.Tensor) -> torch.Tensor:
    """Shading colour (3,) of one (9, 3) light for a unit normal (3,)."""
    return sh_basis(normal[None])[0] @ light
