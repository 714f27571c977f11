"""The face-alignment (FAN) backend, used only when its weights are already cached."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from engine.detect.base import MAX_SIDE, Face, _enclosing_box, _run


def _fan_weight_files() -> list[Path]:
    """The files face-alignment would download into the torch hub cache (2D FAN + S3FD)."""
    import torch
    from face_alignment import api
    from face_alignment.detection.sfd import sfd_detector

    version = torch.__version__
    version = version.rsplit(".", 2 if "dev" in version else 1)[0]
    table = getattr(api, "models_urls", {})
    urls = table.get(version) or getattr(api, "default_model_urls", None) or table
    names = [urls["2DFAN-4"], sfd_detector.models_urls["s3fd"]]
    cache = Path(torch.hub.get_dir()) / "checkpoints"
    return [cache / os.path.basename(n.split("?")[0]) for n in names]


class FaceAlignmentDetector:
    """1adrianb/face-alignment: S3FD boxes + 2D FAN, from weights already in the torch hub cache."""

    name = "face-alignment"

    def __init__(self, device: str = "cpu", max_side: int = MAX_SIDE):
        import inspect

        import face_alignment

        kind = getattr(face_alignment.LandmarksType, "TWO_D", None) or face_alignment.LandmarksType._2D
        options = (
            {"compile": False}
            if "compile" in inspect.signature(face_alignment.FaceAlignment).parameters
            else {}
        )
        self.max_side = max_side
        self._fa = face_alignment.FaceAlignment(kind, device=device, face_detector="sfd", **options)

    def detect(self, image: np.ndarray) -> list[Face]:
        return _run(image, self._find, self.max_side)

    def _find(self, rgb: np.ndarray) -> list[Face]:
        # boxes as float64: face-alignment 1.5 fails on float32 boxes
        boxes = [np.asarray(b, np.float64) for b in self._fa.face_detector.detect_from_image(rgb.copy())]
        if not boxes:
            return []
        landmarks = self._fa.get_landmarks_from_image(rgb, detected_faces=boxes)
        faces = []
        for lm, box in zip(landmarks or [], boxes):
            lm = np.asarray(lm, np.float32)[:, :2]
            score = float(box[4]) if len(box) > 4 else 1.0
            faces.append(Face(_enclosing_box(box[:4].astype(np.float32), lm), lm, score))
        return faces
