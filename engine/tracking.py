"""One face followed across a video's frames: its smoothed crop box, and where one track ends.

Both users of a video follow faces with this one tracker: reconstruction
(engine/reconstruct/video.py: one shape and reflectance per track) and training data
(engine/training/data/video.py: clips never span two tracks). A track ends

- when no face is found in a frame,
- at a shot cut, when the caller gives ``cuts`` (a callable seeing every frame, such as
  engine.reconstruct.shots.CutDetector), or tells :meth:`CropTracker.step` of a cut it found
  itself (video reconstruction finds cuts on its decoding thread, ahead of the tracker),
- when the 68 landmarks jump by more than ``landmark_jump`` x the face's size between
  consecutive frames with a face (another shot or person, seen in the landmarks alone),
- when the caller says so (:meth:`CropTracker.restart`: e.g. the shape is another person's).

A new track restarts the crop smoothing, so a crop never glides from one face to another.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.crop import CropBox, CropSmoother, crop_params_from_landmarks


def landmarks_jumped(previous: np.ndarray, current: np.ndarray, threshold: float) -> bool:
    """A jump of the landmarks larger than ``threshold`` x the face size: another shot or person."""
    extent = np.ptp(previous, axis=0).max()
    return float(np.abs(current - previous).mean(0).max()) > threshold * max(extent, 1.0)


@dataclass
class TrackedFace:
    """A frame's face as the tracker follows it."""

    face: Any  # the detection followed (engine.detect.Face: the first, largest face)
    box: CropBox  # its crop box, smoothed along the track
    new_track: bool  # the first frame of a track


class CropTracker:
    def __init__(
        self,
        fps: float = 25.0,
        cuts: Callable[[np.ndarray], bool] | None = None,
        landmark_jump: float | None = None,
    ):
        self.smoother = CropSmoother(fps)
        self.cuts = cuts
        self.landmark_jump = landmark_jump
        self._previous: np.ndarray | None = None  # landmarks of the track's last frame

    def step(
        self,
        frame: np.ndarray,
        faces: Sequence[Any],
        seconds: float | None = None,
        cut: bool | None = None,
    ) -> TrackedFace | None:
        """Follow the first of ``faces`` (a detector's answer for ``frame``); None without a face.
        ``cut``: whether a new shot starts at ``frame``, when the caller knows (``cuts`` is not
        asked then)."""
        if cut is None:
            cut = self.cuts(frame) if self.cuts is not None else False  # the cut detector sees every frame
        if not faces:
            self._previous = None
            return None
        face = faces[0]
        points = face.landmarks
        new = (
            self._previous is None
            or cut
            or (
                self.landmark_jump is not None
                and landmarks_jumped(self._previous, points, self.landmark_jump)
            )
        )
        if new:
            self.smoother.reset()
        box = self.smoother.update(crop_params_from_landmarks(points), seconds)
        self._previous = points
        return TrackedFace(face, box, new)

    def restart(self, tracked: TrackedFace, seconds: float | None = None) -> TrackedFace:
        """End the track at this frame's face and start another from it (its crop unsmoothed)."""
        self.smoother.reset()
        box = self.smoother.update(crop_params_from_landmarks(tracked.face.landmarks), seconds)
        return TrackedFace(tracked.face, box, True)
