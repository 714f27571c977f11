"""Oriented-gradient cell histograms (HOG-like), read anywhere in an image from one integral image.

``orientation_integral`` splits the gradient of a gray image into BINS unsigned orientation
channels and integrates them once; ``cell_histograms`` then sums each channel over a grid of square
cells around any number of points, in four lookups a cell whatever its size, and normalises each
point's grid. Every point of every cascade stage reads the same integral image: what
``cv2.HOGDescriptor.compute`` recomputed for each window.
"""

from __future__ import annotations

import cv2
import numpy as np

BINS = 6  # unsigned orientations, 30 degrees apart (0 to 180)
LOBE = float(np.cos(np.pi / BINS))  # a channel keeps the part of |cos(angle to it)| above this


def orientation_maps(gray: np.ndarray) -> np.ndarray:
    """(H, W) gray -> (H, W, BINS) float32: each pixel's gradient magnitude times its lobe in each
    channel, max(0, |cos(a - a_k)| - LOBE) / (1 - LOBE), a_k = (k + 0.5) 180 / BINS degrees: a
    gradient along a_k counts fully in channel k and fades to 0 one channel away."""
    gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=1)  # central differences, as HOG
    gy = cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=1)
    scale = 1.0 / (1.0 - LOBE)
    floor = cv2.magnitude(gx, gy) * np.float32(LOBE * scale)
    maps = []
    for k in range(BINS):
        a = (k + 0.5) * np.pi / BINS
        along = cv2.addWeighted(gx, np.cos(a) * scale, gy, np.sin(a) * scale, 0.0)
        lobe = cv2.subtract(np.abs(along), floor)
        maps.append(cv2.threshold(lobe, 0, 0, cv2.THRESH_TOZERO)[1])
    return cv2.merge(maps)


def orientation_integral(gray: np.ndarray) -> np.ndarray:
    """(H, W) gray -> (H + 1, W + 1, BINS) float64 integral images of ``orientation_maps`` (float32
    sums came out differently, by a few units in the last place, from one call to the next on the
    same image: OpenCV's vectorised paths depend on the buffers' memory alignment)."""
    return cv2.integral(orientation_maps(gray), sdepth=cv2.CV_64F)


def cell_histograms(integral: np.ndarray, points: np.ndarray, cell: float, cells: int = 4) -> np.ndarray:
    """(N, 2) points (pixels: pixel i's centre at i) -> (N, cells * cells * BINS) float32: each
    channel summed over a cells x cells grid of square cells of side ``cell`` centred on each point
    (cell edges rounded to whole pixels; cells past the image edge cut at it), then the square root
    of every sum (the power normalisation of Fisher vectors) and each point's vector scaled to unit
    length."""
    h, w = integral.shape[0] - 1, integral.shape[1] - 1
    grid = (np.arange(cells + 1) - cells / 2) * cell + 0.5  # cell edges, in integral coordinates
    xs = np.rint(np.clip(points[:, :1] + grid, 0, w)).astype(np.intp)
    ys = np.rint(np.clip(points[:, 1:] + grid, 0, h)).astype(np.intp)
    corners = integral.reshape(-1, integral.shape[2])[ys[:, :, None] * (w + 1) + xs[:, None, :]]
    rows = corners[:, :, 1:] - corners[:, :, :-1]  # (N, cells + 1, cells, BINS)
    sums = np.abs(rows[:, 1:] - rows[:, :-1]).reshape(len(points), -1)  # abs: rounding only
    normalised = np.sqrt(sums) / (np.sqrt(sums.sum(1, keepdims=True)) + 1e-2 * cell)
    return normalised.astype(np.float32)
