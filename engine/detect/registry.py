"""Which backends this machine can run, and the one place that creates a detector."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from engine.detect.base import Detector, Face, NoFaceError
from engine.detect.dlib import DlibDetector, _dlib_predictor_path
from engine.detect.fan import FaceAlignmentDetector, _fan_weight_files
from engine.detect.haar import HaarDetector, _haar_cascade_path
from engine.detect.mediapipe import MediaPipeDetector
from engine.resources import resources_root

# ------------------------------------------------------------ backend choice


def _missing_module(module: str, package: str) -> str | None:
    if importlib.util.find_spec(module) is None:
        return f"{package} is not installed (pip install {package})"
    return None


def _missing_files(paths: list[Path], what: str) -> str | None:
    absent = [str(p) for p in paths if not p.is_file()]
    return f"{what} not found: {', '.join(absent)}" if absent else None


def _mediapipe_missing() -> str | None:
    models = [
        resources_root() / "detect" / n for n in ("face_detection_short_range.tflite", "face_landmark.tflite")
    ]
    return _missing_module("ai_edge_litert", "ai-edge-litert") or _missing_files(models, "MediaPipe models")


def _face_alignment_missing() -> str | None:
    if reason := _missing_module("face_alignment", "face-alignment"):
        return reason
    try:
        files = _fan_weight_files()
    except (ImportError, AttributeError, KeyError, TypeError) as exc:  # an unknown version: say so
        return f"face-alignment's weight files could not be located ({exc})"
    return _missing_files(files, "face-alignment weights (it downloads them at first use; offline here)")


def _dlib_missing() -> str | None:
    if reason := _missing_module("dlib", "dlib-bin"):
        return reason
    if not os.environ.get("CEST_DLIB_PREDICTOR") and (
        reason := _missing_module("face_recognition_models", "face-recognition-models")
    ):
        return reason
    return _missing_files([_dlib_predictor_path()], "dlib's 68-point shape predictor")


def _haar_missing() -> str | None:
    template = resources_root() / "detect" / "haar_mean_shape68.npy"
    return _missing_files([_haar_cascade_path(), template], "Haar cascade / mean shape")


# name -> (why it is unavailable, or None; constructor), in order of preference
BACKENDS: dict[str, tuple[Callable[[], str | None], Callable[..., Detector]]] = {
    "mediapipe-tflite": (_mediapipe_missing, MediaPipeDetector),
    "face-alignment": (_face_alignment_missing, FaceAlignmentDetector),
    "dlib": (_dlib_missing, DlibDetector),
    "opencv-haar": (_haar_missing, HaarDetector),
}


def backend_status() -> dict[str, str | None]:
    """Each backend -> None if usable, else the reason it is not."""
    return {name: missing() for name, (missing, _) in BACKENDS.items()}


def available_backends() -> list[str]:
    """Usable backends, best first."""
    return [name for name, reason in backend_status().items() if reason is None]


def create_detector(backend: str = "auto", **options) -> Detector:
    """A detector by backend name; "auto" takes the best available one."""
    if backend == "auto":
        status = backend_status()
        usable = [name for name, reason in status.items() if reason is None]
        if not usable:
            reasons = "; ".join(f"{n}: {r}" for n, r in status.items())
            raise RuntimeError(f"no face detector backend is available ({reasons})")
        backend = usable[0]
    if backend not in BACKENDS:
        raise ValueError(f"unknown detector backend {backend!r}; choose from {list(BACKENDS)} or 'auto'")
    missing, make = BACKENDS[backend]
    if reason := missing():
        raise RuntimeError(f"detector backend {backend!r} is unavailable: {reason}")
    return make(**options)


def detect_largest(image: np.ndarray, detector: Detector | None = None, source: str = "the image") -> Face:
    """The largest face, or NoFaceError("no face found in <source>")."""
    faces = (detector or default_detector()).detect(image)
    if not faces:
        raise NoFaceError(f"no face found in {source}")
    return faces[0]


_DEFAULT: Detector | None = None


def default_detector() -> Detector:
    """One shared "auto" detector, created on first use."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = create_detector("auto")
    return _DEFAULT
