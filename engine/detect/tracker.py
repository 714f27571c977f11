"""Following one face from frame to frame: the full detector once, then the landmark model alone in
the region the previous frame's face occupied (MediaPipe's own video mode), and the full detector
again when the face is lost or the shot changes. Backends without a ``track`` method detect every
frame."""

from __future__ import annotations

import numpy as np

from engine.detect.base import Face


class FaceTracker:
    def __init__(self, detector) -> None:
        self.detector = detector
        self.face: Face | None = None
        self.detections = self.tracked = 0  # how many frames took each path

    def __call__(self, frame: np.ndarray, redetect: bool = False) -> Face | None:
        """The tracked face in ``frame`` (the largest face when detecting afresh), or None."""
        track = getattr(self.detector, "track", None)
        if self.face is not None and not redetect and track is not None:
            face = track(frame, self.face)
            if face is not None:
                self.tracked += 1
                self.face = face
                return face
        self.detections += 1
        faces = self.detector.detect(frame)
        self.face = faces[0] if faces else None
        return self.face

    def reset(self) -> None:
        self.face = None
