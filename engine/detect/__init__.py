"""Face boxes + 68 iBUG landmarks, offline, behind one small interface.

Backends, best first: ``mediapipe-tflite`` (BlazeFace + Face Mesh, shipped in
resources/detect/, run with ai-edge-litert; :mod:`engine.detect.mediapipe`), ``face-alignment``
(only when its weights are already cached; :mod:`~engine.detect.fan`), ``dlib`` (when installed
with its model; :mod:`~engine.detect.dlib`), and ``opencv-haar`` (boxes only; the landmarks are a
mean shape placed in the box; :mod:`~engine.detect.haar`). :mod:`~engine.detect.registry` picks one;
:mod:`~engine.detect.ibug68` holds the 68-point tables.

Every backend takes gray / RGB / RGBA arrays, shrinks images whose long side exceeds
MAX_SIDE before detecting, and returns faces in the input's pixels, largest first.
"""

from engine.detect.base import MAX_SIDE, Detector, Face, NoFaceError, as_rgb, shrink
from engine.detect.haar import HaarDetector, haar_boxes
from engine.detect.ibug68 import IBUG68_FLIP, MESH_TO_IBUG68, flip_landmarks, mesh_to_ibug68
from engine.detect.mediapipe import MediaPipeDetector, blazeface_anchors, weighted_nms
from engine.detect.registry import (
    BACKENDS,
    available_backends,
    backend_status,
    create_detector,
    default_detector,
    detect_largest,
)

__all__ = [
    "BACKENDS",
    "IBUG68_FLIP",
    "MAX_SIDE",
    "MESH_TO_IBUG68",
    "Detector",
    "Face",
    "HaarDetector",
    "MediaPipeDetector",
    "NoFaceError",
    "as_rgb",
    "available_backends",
    "backend_status",
    "blazeface_anchors",
    "create_detector",
    "default_detector",
    "detect_largest",
    "flip_landmarks",
    "haar_boxes",
    "mesh_to_ibug68",
    "shrink",
    "weighted_nms",
]
