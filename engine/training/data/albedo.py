"""Procedural face albedo in the face model's UV space: skin, cheeks, lips, brows, lashes, noise.

Features are placed with the UV positions of the model's 68 landmark vertices, so the map fits
the mesh whatever its resolution. The layout is mirror-symmetric about u = 0.5 like the UVs;
a little asymmetric noise keeps real faces' imperfection.
"""

from __future__ import annotations

import cv2
import numpy as np

from engine.facemodel import FaceModel

# Linear-ish sRGB skin tones from light to dark; a face takes a blend of two neighbours.
SKIN_TONES = np.array(
    [
        [0.96, 0.80, 0.70],
        [0.90, 0.72, 0.60],
        [0.84, 0.64, 0.52],
        [0.76, 0.56, 0.42],
        [0.64, 0.45, 0.33],
        [0.52, 0.36, 0.25],
        [0.40, 0.27, 0.19],
        [0.30, 0.20, 0.14],
    ],
    np.float32,
)
HAIR_TONES = np.array(
    [
        [0.08, 0.06, 0.05],
        [0.22, 0.15, 0.10],
        [0.40, 0.28, 0.17],
        [0.65, 0.52, 0.33],
        [0.45, 0.20, 0.10],
        [0.55, 0.55, 0.55],
    ],
    np.float32,
)


def landmark_uv_pixels(model: FaceModel, size: int) -> np.ndarray:
    """(68, 2) pixel positions (x, y; row 0 at v = 1) of the landmark vertices in a size² map."""
    uv = model.uvs[model.landmarks].cpu().numpy()
    return np.stack([uv[:, 0] * size - 0.5, (1 - uv[:, 1]) * size - 0.5], 1).astype(np.float32)


def smooth_noise(rng: np.random.Generator, size: int, cells: int, channels: int = 1) -> np.ndarray:
    """Band-limited noise in [-1, 1]: a random cells² grid upsampled bicubically."""
    grid = rng.uniform(-1, 1, (cells, cells, channels)).astype(np.float32)
    out = cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC)
    return np.clip(out.reshape(size, size, channels), -1, 1)


def _mirror_mean(layer: np.ndarray) -> np.ndarray:
    return 0.5 * (layer + layer[:, ::-1])


def _blob(size: int, centre, radius: float) -> np.ndarray:
    y, x = np.mgrid[:size, :size].astype(np.float32)
    return np.exp(-((x - centre[0]) ** 2 + (y - centre[1]) ** 2) / (2 * radius**2))


def _polygon_mask(size: int, points: np.ndarray, blur: float) -> np.ndarray:
    mask = np.zeros((size, size), np.float32)
    cv2.fillPoly(mask, [np.round(points * 16).astype(np.int32)], 1.0, cv2.LINE_AA, shift=4)
    return cv2.GaussianBlur(mask, (0, 0), blur) if blur > 0 else mask


def _stroke_mask(size: int, points: np.ndarray, thickness: float, blur: float) -> np.ndarray:
    mask = np.zeros((size, size), np.float32)
    pts = np.round(points * 16).astype(np.int32)
    cv2.polylines(mask, [pts], False, 1.0, max(1, int(round(thickness))), cv2.LINE_AA, shift=4)
    return cv2.GaussianBlur(mask, (0, 0), blur) if blur > 0 else mask


def _paint(base: np.ndarray, mask: np.ndarray, colour: np.ndarray, strength: float = 1.0) -> np.ndarray:
    alpha = np.clip(mask * strength, 0, 1)[..., None]
    return base * (1 - alpha) + colour * alpha


def procedural_albedo(rng: np.random.Generator, model: FaceModel, size: int = 128) -> np.ndarray:
    """A random face albedo: (3, size, size) float32 in [0, 1], row 0 at v = 1."""
    lm = landmark_uv_pixels(model, size)
    scale = size / 128.0
    tone = rng.uniform(0, len(SKIN_TONES) - 1)
    lo = int(tone)
    skin = SKIN_TONES[lo] * (1 - tone + lo) + SKIN_TONES[min(lo + 1, len(SKIN_TONES) - 1)] * (tone - lo)
    skin = skin * rng.uniform(0.92, 1.06, 3).astype(np.float32)  # hue and brightness jitter
    hair = HAIR_TONES[rng.integers(len(HAIR_TONES))] * rng.uniform(0.8, 1.2)

    low = _mirror_mean(smooth_noise(rng, size, 5, 3)) * 0.05 + smooth_noise(rng, size, 9, 3) * 0.015
    albedo = np.broadcast_to(skin, (size, size, 3)) * (1 + low)

    redness = np.array([0.10, -0.05, -0.04], np.float32) * rng.uniform(0.3, 1.2)
    cheeks = sum(_blob(size, lm[i] * 0.6 + lm[j] * 0.4, 9 * scale) for i, j in ((2, 31), (14, 35)))
    nose = _blob(size, lm[30], 5 * scale) * rng.uniform(0.2, 0.8)
    albedo = albedo * (1 + (cheeks + nose)[..., None] * redness)

    if rng.random() < 0.3:  # stubble over jaw and upper lip
        beard = _polygon_mask(size, np.concatenate([lm[3:14], lm[[54, 33, 48]]]), 3 * scale)
        albedo = _paint(
            albedo, beard, albedo * np.array([0.65, 0.68, 0.75], np.float32), rng.uniform(0.3, 0.8)
        )

    lip_colour = skin * np.array([0.85, 0.55, 0.58], np.float32) * rng.uniform(0.8, 1.05)
    albedo = _paint(albedo, _polygon_mask(size, lm[48:60], 1.0 * scale), lip_colour, rng.uniform(0.6, 1.0))
    albedo = _paint(albedo, _polygon_mask(size, lm[60:68], 0.8 * scale), skin * 0.35, 0.8)

    brow_width = rng.uniform(2.0, 4.5) * scale
    for side in (lm[17:22], lm[22:27]):
        mask = _stroke_mask(size, side, brow_width, 1.2 * scale)
        albedo = _paint(albedo, mask, hair, rng.uniform(0.6, 0.95))
    for eye in (lm[36:42], lm[42:48]):
        lid = _stroke_mask(size, eye[[0, 1, 2, 3]], 1.5 * scale, 0.8 * scale)
        albedo = _paint(albedo, lid, hair * 0.5, 0.8)
        socket = _blob(size, eye.mean(0), 7 * scale)
        albedo = albedo * (1 - socket[..., None] * np.array([0.08, 0.1, 0.06], np.float32))

    albedo = albedo * (1 + rng.normal(0, 0.012, (size, size, 1)).astype(np.float32))  # pores
    return np.ascontiguousarray(np.clip(albedo, 0, 1).transpose(2, 0, 1), np.float32)
