"""Viewpoint maths: Euler rotations and the scaled-orthographic projection into crop NDC."""

from __future__ import annotations

import torch


def euler_to_matrix(angles: torch.Tensor) -> torch.Tensor:
    """(B, 3) pitch, yaw, roll in radians -> (B, 3, 3) ``Rz(roll) @ Ry(yaw) @ Rx(pitch)``."""
    pitch, yaw, roll = angles.unbind(-1)
    one, zero = torch.ones_like(pitch), torch.zeros_like(pitch)
    cx, sx, cy, sy, cz, sz = pitch.cos(), pitch.sin(), yaw.cos(), yaw.sin(), roll.cos(), roll.sin()
    rx = torch.stack([one, zero, zero, zero, cx, -sx, zero, sx, cx], -1).reshape(-1, 3, 3)
    ry = torch.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], -1).reshape(-1, 3, 3)
    rz = torch.stack([cz, -sz, zero, sz, cz, zero, zero, zero, one], -1).reshape(-1, 3, 3)
    return rz @ ry @ rx


def matrix_to_euler(matrix: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`euler_to_matrix` (away from gimbal lock) -> (B, 3)."""
    yaw = torch.asin((-matrix[:, 2, 0]).clamp(-1, 1))
    pitch = torch.atan2(matrix[:, 2, 1], matrix[:, 2, 2])
    roll = torch.atan2(matrix[:, 1, 0], matrix[:, 0, 0])
    return torch.stack([pitch, yaw, roll], -1)


def to_camera(vertices: torch.Tensor, rotation: torch.Tensor) -> torch.Tensor:
    """Model space (B, V, 3) -> camera space, rotated by the (B, 3) Euler angles."""
    return vertices @ euler_to_matrix(rotation).transpose(1, 2)


def project(verts_cam: torch.Tensor, scale: torch.Tensor, translation: torch.Tensor) -> torch.Tensor:
    """Camera space (B, V, 3) -> crop NDC (B, V, 3): x right, y down, z depth (larger = closer)."""
    flip = verts_cam.new_tensor([1.0, -1.0, 1.0])
    shift = torch.cat([translation, torch.zeros_like(translation[:, :1])], -1)
    return verts_cam * flip * scale.reshape(-1, 1, 1) + shift[:, None, :]


def ndc_to_pixels(ndc_xy: torch.Tensor, size: int) -> torch.Tensor:
    return (ndc_xy + 1) / 2 * size - 0.5


def pixels_to_ndc(pixels: torch.Tensor, size: int) -> torch.Tensor:
    return (pixels + 0.5) / size * 2 - 1
