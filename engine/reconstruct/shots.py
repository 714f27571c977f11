"""When the person in a video changes: a cut between shots, or a face whose shape is someone else's.

``CutDetector`` compares consecutive frames' colour histograms (a hard cut changes most of the
picture at once); ``shape_distance`` is the RMS distance in cm between two neutral face shapes
(identity coefficients through the face model), which tells one person from another whatever
the method's coefficient scale.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

CUT_DISTANCE = (
    0.3  # Bhattacharyya distance of consecutive frames' hue-saturation histograms (0.05 within a shot)
)
IDENTITY_JUMP_CM = (
    0.35  # RMS distance (cm) between a frame's neutral shape and the track's (~0.07 within a track)
)
MIN_TRACK_FRAMES = 3  # frames a track needs before a shape jump counts (the mean must have settled)
# A jump must also stand out from the track's own frame-to-mean spread: single-photo shape estimates
# of one person scatter by 0.1-0.9 cm on an expressive clip (video_expressions.mp4: median 0.24,
# p99 0.87 cm), so a fixed 0.35 cm split it into 97 tracks.
JUMP_SPREADS = 3.5


def jump_threshold(distance_sq_sum: float, count: int) -> float:
    """The shape distance (cm) above which a frame is someone else, given the track's spread so far."""
    spread = (distance_sq_sum / count) ** 0.5 if count else 0.0
    return max(IDENTITY_JUMP_CM, JUMP_SPREADS * spread)


class CutDetector:
    """``detector(frame)`` is True when ``frame`` starts another shot than the frame before it."""

    def __init__(self, threshold: float = CUT_DISTANCE):
        self.threshold = threshold
        self.previous: np.ndarray | None = None

    def __call__(self, frame: np.ndarray) -> bool:
        small = cv2.resize(frame, (64, 64), interpolation=cv2.INTER_AREA)
        hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV)
        hist = cv2.calcHist([hsv], [0, 1], None, [16, 8], [0, 180, 0, 256])
        cv2.normalize(hist, hist, 1, 0, cv2.NORM_L1)
        previous, self.previous = self.previous, hist
        return (
            previous is not None
            and cv2.compareHist(previous, hist, cv2.HISTCMP_BHATTACHARYYA) > self.threshold
        )


def shape_distance(face_model, identity_a: torch.Tensor, identity_b: torch.Tensor) -> float:
    """RMS vertex distance (cm) between the neutral shapes of two identities (batch of one each)."""
    device = face_model.device
    a, b = identity_a.to(device), identity_b.to(device)
    neutral = torch.zeros(a.shape[0], face_model.n_expression, device=device)
    va, vb = face_model.vertices(a, neutral), face_model.vertices(b, neutral)
    return float((va - vb).square().sum(-1).mean().sqrt())
