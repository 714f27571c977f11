"""The detector interface: a Face (box, 68 landmarks, score), the Detector protocol, image preparation."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np

MAX_SIDE = 1280  # long side an image is shrunk to before detection


@dataclass
class Face:
    """One face: box (4,) x0, y0, x1, y1 and landmarks (68, 2) x, y, in input pixels."""

    box: np.ndarray
    landmarks: np.ndarray
    score: float
    mesh: np.ndarray | None = (
        None  # (468, 3) Face Mesh points (pixels; depth in pixels) if the backend has them
    )


class NoFaceError(ValueError):
    """No face was found where one was needed."""


class Detector(Protocol):
    name: str

    def detect(self, image: np.ndarray) -> list[Face]:
        """HxWx3 uint8 RGB (gray and RGBA accepted) -> faces, largest first."""
        ...


# ---------------------------------------------------------------- image prep


def as_rgb(image: np.ndarray) -> np.ndarray:
    """Any gray / gray+alpha / RGB / RGBA array -> HxWx3 uint8.

    uint8 as is, uint16 scaled from 0..65535, floats in [0, 1] scaled, other numbers clipped to 0..255."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        if image.dtype == np.uint16:
            scale = 255 / 65535
        else:
            scale = 255.0 if np.issubdtype(image.dtype, np.floating) and image.max(initial=0) <= 1 else 1.0
        image = np.clip(image * scale, 0, 255).round().astype(np.uint8)
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 2, 3, 4):
        raise ValueError(f"expected an HxW, HxWx1..4 image, got shape {image.shape}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"empty image (shape {image.shape})")
    if image.shape[2] in (1, 2):
        image = np.repeat(image[:, :, :1], 3, axis=2)
    return np.ascontiguousarray(image[:, :, :3])


def shrink(image: np.ndarray, max_side: int = MAX_SIDE) -> tuple[np.ndarray, float]:
    """Downscale so the long side is at most max_side; returns (image, scale applied)."""
    h, w = image.shape[:2]
    scale = max_side / max(h, w)
    if scale >= 1:
        return image, 1.0
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), scale


def _rescale_face(face: Face, scale: float) -> Face:
    """Map a face found on an image scaled by `scale` back to the original pixels."""
    if scale == 1:
        return face
    to_orig = lambda p: (np.asarray(p, np.float32) + 0.5) / scale - 0.5  # noqa: E731
    box = to_orig(face.box.reshape(2, 2)).reshape(4)
    mesh = None
    if face.mesh is not None:
        mesh = np.hstack([to_orig(face.mesh[:, :2]), face.mesh[:, 2:] / scale]).astype(np.float32)
    return Face(box, to_orig(face.landmarks), face.score, mesh)


def _box_area(face: Face) -> float:
    x0, y0, x1, y1 = face.box
    return float((x1 - x0) * (y1 - y0))


def _run(image: np.ndarray, find: Callable[[np.ndarray], list[Face]], max_side: int) -> list[Face]:
    """Shared detect(): convert, shrink, find, map back, sort largest first."""
    rgb = as_rgb(image)
    small, scale = shrink(rgb, max_side)
    faces = [_rescale_face(f, scale) for f in find(small)]
    return sorted(faces, key=_box_area, reverse=True)


def _enclosing_box(box: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """The union of a detector box and the landmarks' extent."""
    lo = np.minimum(box[:2], landmarks.min(axis=0))
    hi = np.maximum(box[2:], landmarks.max(axis=0))
    return np.concatenate([lo, hi]).astype(np.float32)
