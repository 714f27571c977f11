"""The dlib backend, when dlib is installed with its 68-point model."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np

from engine.detect.base import MAX_SIDE, Face, _enclosing_box, _run


def _dlib_predictor_path() -> Path:
    """$CEST_DLIB_PREDICTOR, or the 68-point model inside face-recognition-models (found, not
    imported: that package needs the removed pkg_resources)."""
    if env := os.environ.get("CEST_DLIB_PREDICTOR"):
        return Path(env)
    spec = importlib.util.find_spec("face_recognition_models")
    folder = Path(spec.submodule_search_locations[0]) if spec and spec.submodule_search_locations else Path()
    return folder / "models" / "shape_predictor_68_face_landmarks.dat"


class DlibDetector:
    """dlib HOG boxes + the 68-point shape predictor (its training data excludes commercial use)."""

    name = "dlib"

    def __init__(self, max_side: int = MAX_SIDE, predictor: Path | None = None):
        import dlib

        self.max_side = max_side
        self._boxes = dlib.get_frontal_face_detector()
        self._shape = dlib.shape_predictor(str(predictor or _dlib_predictor_path()))

    def detect(self, image: np.ndarray) -> list[Face]:
        return _run(image, self._find, self.max_side)

    def _find(self, rgb: np.ndarray) -> list[Face]:
        rects, scores, _ = self._boxes.run(rgb, 1, 0.0)
        faces = []
        for rect, score in zip(rects, scores):
            parts = self._shape(rgb, rect).parts()
            lm = np.array([(p.x, p.y) for p in parts], np.float32)
            box = np.array([rect.left(), rect.top(), rect.right(), rect.bottom()], np.float32)
            faces.append(Face(_enclosing_box(box, lm), lm, float(score)))
        return faces
