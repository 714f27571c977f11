"""The OpenCV Haar backend: boxes only; the landmarks are a mean shape placed in the box."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

from engine.detect.base import MAX_SIDE, Face, _enclosing_box, _run
from engine.resources import resources_root

# ------------------------------------------------------------ other backends


def _haar_cascade_path() -> Path:
    return Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"


def haar_boxes(cascade, rgb: np.ndarray) -> list[tuple[np.ndarray, float]]:
    """OpenCV Haar cascade: [(box (4,), score in (0, 1))] in pixels of rgb."""
    gray = cv2.equalizeHist(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
    side = max(24, min(gray.shape) // 12)
    rects, _, weights = cascade.detectMultiScale3(
        gray, scaleFactor=1.2, minNeighbors=5, minSize=(side, side), outputRejectLevels=True
    )
    return [
        (np.array([x, y, x + w, y + h], np.float32) - 0.5, float(1 - math.exp(-max(float(s), 0))))
        for (x, y, w, h), s in zip(rects, np.ravel(weights))
    ]


class HaarDetector:
    """OpenCV Haar boxes; the landmarks are a mean shape placed in the box (rough, no pose)."""

    name = "opencv-haar"

    def __init__(self, max_side: int = MAX_SIDE, template: Path | None = None):
        self.max_side = max_side
        self._cascade = cv2.CascadeClassifier(str(_haar_cascade_path()))
        self._template = np.load(template or resources_root() / "detect" / "haar_mean_shape68.npy")

    def detect(self, image: np.ndarray) -> list[Face]:
        return _run(image, self._find, self.max_side)

    def _find(self, rgb: np.ndarray) -> list[Face]:
        faces = []
        for box, score in haar_boxes(self._cascade, rgb):
            landmarks = (box[:2] + self._template * (box[2:] - box[:2])).astype(np.float32)
            faces.append(Face(_enclosing_box(box, landmarks), landmarks, score))
        return faces
