"""Square face crops from 68 landmarks, the maps between image, crop and NDC, and their smoothing.

A CropBox is a square in image pixel coordinates (pixel centres at integers): it spans
[cx - side/2, cx + side/2] in x and y. No rotation: the network sees the roll.
Crop pixel u (also centre-based) and crop NDC follow docs/conventions.md:
px = (ndc + 1) / 2 * size - 0.5 (engine.camera.ndc_to_pixels), so ndc = 2 * (x - cx) / side whatever the crop size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

FACE_FILL = 0.75  # the 68-point bounding box's long side, as a fraction of the crop side


@dataclass(frozen=True)
class CropBox:
    """Square crop: centre (cx, cy) and side length, in image pixels."""

    cx: float
    cy: float
    side: float

    @property
    def corner(self) -> np.ndarray:
        """Top-left corner (x, y) of the square (a pixel edge, not a centre)."""
        return np.array([self.cx - self.side / 2, self.cy - self.side / 2])


def crop_params_from_landmarks(landmarks: np.ndarray, fill: float = FACE_FILL) -> CropBox:
    """Square around the 68 landmarks' bounding box, whose long side covers `fill` of it."""
    points = np.asarray(landmarks, np.float64)[:, :2]
    lo, hi = points.min(axis=0), points.max(axis=0)
    centre = (lo + hi) / 2
    side = float((hi - lo).max() / fill)
    if not side > 0:
        raise ValueError("landmarks have no extent")
    return CropBox(float(centre[0]), float(centre[1]), side)


# ----------------------------------------------------------- point mapping


def image_to_crop(points: np.ndarray, box: CropBox, size: int) -> np.ndarray:
    """Image pixel (x, y) -> crop pixel (x, y) of a size x size crop."""
    points = np.asarray(points, np.float64)
    return (points - box.corner) * (size / box.side) - 0.5


def crop_to_image(points: np.ndarray, box: CropBox, size: int) -> np.ndarray:
    """Crop pixel (x, y) of a size x size crop -> image pixel (x, y)."""
    points = np.asarray(points, np.float64)
    return (points + 0.5) * (box.side / size) + box.corner


def image_to_ndc(points: np.ndarray, box: CropBox) -> np.ndarray:
    """Image pixel -> crop NDC: 2 (x - c) / side."""
    return (np.asarray(points, np.float64) - [box.cx, box.cy]) * (2 / box.side)


def ndc_to_image(ndc: np.ndarray, box: CropBox) -> np.ndarray:
    """Crop NDC -> image pixel."""
    return np.asarray(ndc, np.float64) * (box.side / 2) + [box.cx, box.cy]


# ------------------------------------------------------------- image crop

_BORDERS = {"replicate": cv2.BORDER_REPLICATE, "constant": cv2.BORDER_CONSTANT}


def crop_image(
    image: np.ndarray, box: CropBox, size: int, border: str = "replicate", value: int = 0
) -> np.ndarray:
    """The size x size crop (bilinear, area-averaged first when shrinking over 2x).

    Outside the image: border="replicate" repeats the edge, "constant" fills with value.
    """
    if border not in _BORDERS:
        raise ValueError(f"border must be one of {list(_BORDERS)}, got {border!r}")
    image = np.asarray(image)
    factor = int(box.side / size)
    if factor >= 2:
        image, box = _shrink_region(image, box, factor, border, value)
    scale = box.side / size
    x0, y0 = box.corner + 0.5 * scale  # crop pixel u -> image pixel u * scale + (x0, y0), as crop_to_image
    m = np.array([[scale, 0, x0], [0, scale, y0]])
    return cv2.warpAffine(
        image,
        m,
        (size, size),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=_BORDERS[border],
        borderValue=_fill(image, value),
    )


def crop_face(image: np.ndarray, landmarks: np.ndarray, size: int, **options) -> tuple[np.ndarray, CropBox]:
    """Crop box from the landmarks and the crop itself."""
    box = crop_params_from_landmarks(landmarks)
    return crop_image(image, box, size, **options), box


def _fill(image: np.ndarray, value: float) -> tuple:
    channels = 1 if image.ndim == 2 else image.shape[2]
    return (value,) * min(channels, 4)


def _shrink_region(image: np.ndarray, box: CropBox, factor: int, border: str, value: int):
    """Take the box's region (plus a margin) and area-shrink it by an integer factor.

    The region starts on the pixel edge nearest the box corner, so a box on the pixel grid
    shrinks exactly (each output pixel the mean of factor x factor pixels)."""
    edge = np.round(box.corner + 0.5).astype(int)  # pixel edge e lies at centre coordinate e - 0.5
    x0, y0 = edge - 2 * factor
    n = (math.ceil(box.side / factor) + 4) * factor
    region = _take(image, int(x0), int(y0), n, border, value)
    small = cv2.resize(region, (n // factor, n // factor), interpolation=cv2.INTER_AREA)
    shrink = lambda c, o: (c - o + 0.5) / factor - 0.5  # noqa: E731
    return small, CropBox(shrink(box.cx, x0), shrink(box.cy, y0), box.side / factor)


def _take(image: np.ndarray, x0: int, y0: int, n: int, border: str, value: int) -> np.ndarray:
    """image[y0:y0+n, x0:x0+n], padded where it leaves the image."""
    h, w = image.shape[:2]
    top, left = min(max(-y0, 0), n), min(max(-x0, 0), n)
    sub = image[y0 + top : max(y0 + top, min(y0 + n, h)), x0 + left : max(x0 + left, min(x0 + n, w))]
    if sub.size == 0:  # entirely outside the image
        if border == "constant":
            return np.full((n, n) + image.shape[2:], value, image.dtype)
        rows, cols = np.clip(np.arange(y0, y0 + n), 0, h - 1), np.clip(np.arange(x0, x0 + n), 0, w - 1)
        return image.take(rows, axis=0).take(cols, axis=1)
    bottom, right = n - top - sub.shape[0], n - left - sub.shape[1]
    return cv2.copyMakeBorder(sub, top, bottom, left, right, _BORDERS[border], value=_fill(image, value))


# --------------------------------------------------------------- smoothing


class CropSmoother:
    """One Euro filter on crop boxes across video frames (still when still, quick when moving).

    Speeds are measured in crop sides per second, so the settings do not depend on the face
    size. A jump of more than `cut_jump` sides (or a size change over `cut_zoom`x) is taken
    as a cut and restarts the filter; call reset() on a known cut.
    """

    def __init__(
        self,
        fps: float = 25.0,
        min_cutoff: float = 1.0,
        beta: float = 4.0,
        d_cutoff: float = 1.0,
        cut_jump: float = 0.5,
        cut_zoom: float = 1.5,
    ):
        self.fps, self.min_cutoff, self.beta, self.d_cutoff = fps, min_cutoff, beta, d_cutoff
        self.cut_jump, self.cut_zoom = cut_jump, cut_zoom
        self.reset()

    def reset(self) -> None:
        self._state: np.ndarray | None = None  # filtered (cx, cy, log side)
        self._speed = np.zeros(3)
        self._time: float | None = None

    def update(self, box: CropBox, t: float | None = None) -> CropBox:
        """Feed this frame's box (t in seconds; default: one frame after the last) -> smoothed box."""
        t = (self._time + 1 / self.fps if self._time is not None else 0.0) if t is None else t
        x = np.array([box.cx, box.cy, math.log(box.side)])
        if self._state is None or self._is_cut(x):
            self._state, self._speed, self._time = x, np.zeros(3), t
            return box
        dt = max(t - self._time, 1e-6)
        self._time = t
        side = math.exp(self._state[2])
        raw_speed = (x - self._state) / dt / np.array([side, side, 1.0])  # sides/s and log-size/s
        self._speed += _alpha(self.d_cutoff, dt) * (raw_speed - self._speed)
        cutoff = self.min_cutoff + self.beta * np.linalg.norm(self._speed)
        self._state = self._state + _alpha(cutoff, dt) * (x - self._state)
        return CropBox(float(self._state[0]), float(self._state[1]), float(math.exp(self._state[2])))

    def _is_cut(self, x: np.ndarray) -> bool:
        side = math.exp(self._state[2])
        jump = np.hypot(*(x[:2] - self._state[:2])) / side
        return jump > self.cut_jump or abs(x[2] - self._state[2]) > math.log(self.cut_zoom)


def _alpha(cutoff: float, dt: float) -> float:
    """Smoothing factor of a first-order low-pass at `cutoff` Hz."""
    tau = 1 / (2 * math.pi * cutoff)
    return 1 / (1 + tau / dt)


class OneEuroFilter:
    """The One Euro filter (Casiez et al. 2012) on a vector, each component with its own cutoff:
    still values are smoothed hard (``min_cutoff`` Hz), fast ones follow with little lag (``beta``
    raises the cutoff with the component's speed, in its own units per second)."""

    def __init__(self, min_cutoff: float = 1.0, beta: float = 1.0, d_cutoff: float = 1.0):
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self.reset()

    def reset(self) -> None:
        self._state: np.ndarray | None = None
        self._speed: np.ndarray | None = None
        self._time: float | None = None

    def __call__(self, x: np.ndarray, t: float) -> np.ndarray:
        """Feed the value at time ``t`` (seconds) -> the filtered value."""
        x = np.asarray(x, np.float64)
        if self._state is None:
            self._state, self._speed, self._time = x.copy(), np.zeros_like(x), t
            return x.copy()
        dt = max(t - self._time, 1e-6)
        self._time = t
        self._speed += _alpha(self.d_cutoff, dt) * ((x - self._state) / dt - self._speed)
        cutoff = self.min_cutoff + self.beta * np.abs(self._speed)
        self._state = self._state + _alpha_array(cutoff, dt) * (x - self._state)
        return self._state.copy()


def _alpha_array(cutoff: np.ndarray, dt: float) -> np.ndarray:
    tau = 1 / (2 * np.pi * cutoff)
    return 1 / (1 + tau / dt)
