"""A video's motion as curves: expression weights and head pose per frame, smoothed, gaps filled.

Built from the per-frame records of frames.jsonl, so a finished video folder is all it needs.

- Head position: the weak-perspective viewpoint read as a pinhole camera whose focal length is the
  frame's long side (a ~53 degree lens): the head's distance is that focal length over its size in
  pixels per cm. Positions are in metres, centred on the clip's mean, so the head moves about the origin.
- Smoothing: the One Euro filter (engine/crop.py) on every curve, restarted when the face or the
  person (track) changes, so a still face does not flicker and a fast one lags little.
- Frames without a face (the no-face policy): every curve holds the last pose for HOLD_S, then fades
  linearly to neutral (expressions 0, head frontal at the mean position) over FADE_S; frames before the
  first face are neutral. A face that returns takes over at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from engine.camera import euler_to_matrix, matrix_to_euler
from engine.crop import OneEuroFilter
from engine.headpose import frame_offset

HOLD_S = 1.0  # a lost face's last pose is held this long...
FADE_S = 1.0  # ...then fades to neutral over this long
# One Euro settings per curve group: (min_cutoff Hz, beta per unit/s); measured in the report of issue 14
EXPRESSION_FILTER = (1.5, 0.3)
ROTATION_FILTER = (1.0, 0.5)
POSITION_FILTER = (1.0, 5.0)


@dataclass
class Motion:
    """N frames: ``times`` (N,) s, ``face`` (N,) bool, ``track`` (N,) int (-1: no face),
    ``expression`` (N, E) weights, ``rotation`` (N, 3) pitch/yaw/roll rad (our viewpoint),
    ``position`` (N, 3) metres (x right, y up, z toward the viewer). Values of no-face frames are
    meaningless until :func:`fill_gaps`."""

    times: np.ndarray
    face: np.ndarray
    track: np.ndarray
    expression: np.ndarray
    rotation: np.ndarray
    position: np.ndarray
    fps: float

    @property
    def curves(self) -> np.ndarray:
        """(N, E + 6): expression, rotation, position side by side."""
        return np.concatenate([self.expression, self.rotation, self.position], axis=1)

    def with_curves(self, curves: np.ndarray) -> Motion:
        e = self.expression.shape[1]
        return Motion(
            self.times,
            self.face,
            self.track,
            curves[:, :e],
            curves[:, e : e + 3],
            curves[:, e + 3 :],
            self.fps,
        )


def neutral_rotation() -> np.ndarray:
    """(3,) our pitch/yaw/roll of a frontal head (benchmark angles 0: the calibrated frame offset)."""
    offset = torch.from_numpy(frame_offset()).double()[None]
    return matrix_to_euler(offset)[0].numpy()


def motion_from_records(
    records: list[dict], fps: float, frame_size: tuple[int, int], n_expression: int
) -> Motion:
    """Motion of a video from its frames.jsonl records (in frame order); ``frame_size`` is (width, height)."""
    n = len(records)
    times = np.array([r.get("time_s", r["frame"] / fps) for r in records], np.float64)
    face = np.array([bool(r.get("face")) for r in records])
    track = np.array([int(r.get("track", 0)) if r.get("face") else -1 for r in records])
    expression, rotation, position = np.zeros((n, n_expression)), np.zeros((n, 3)), np.zeros((n, 3))
    for i in np.flatnonzero(face):
        record = records[i]
        expression[i] = np.clip(record["expression"], 0.0, 1.0)
        rotation[i] = record["viewpoint"]["rotation_pitch_yaw_roll_rad"]
        position[i] = _position(record, frame_size)
    if face.any():
        position[face] -= position[face].mean(axis=0)
    return Motion(times, face, track, expression, rotation, position, fps)


def _position(record: dict, frame_size: tuple[int, int]) -> np.ndarray:
    cx, cy, side = record["crop_centre_side_px"]
    tx, ty = record["viewpoint"]["translation_ndc"]
    px_per_cm = record["viewpoint"]["scale_ndc_per_cm"] * side / 2
    width, height = frame_size
    focal = max(width, height)
    u, v = cx + tx * side / 2 - width / 2, cy + ty * side / 2 - height / 2
    return np.array([u / px_per_cm, -v / px_per_cm, -focal / px_per_cm]) / 100.0


def smooth(motion: Motion) -> Motion:
    """The One Euro filter along every run of frames with the same person's face."""
    curves = motion.curves.copy()
    e = motion.expression.shape[1]
    settings = [EXPRESSION_FILTER] * e + [ROTATION_FILTER] * 3 + [POSITION_FILTER] * 3
    filt = OneEuroFilter(np.array([s[0] for s in settings]), np.array([s[1] for s in settings]))
    previous = -1
    for i in range(len(curves)):
        if not motion.face[i]:
            previous = -1
            continue
        if motion.track[i] != previous:
            filt.reset()
            previous = motion.track[i]
        curves[i] = filt(curves[i], float(motion.times[i]))
    smoothed = motion.with_curves(curves)
    smoothed.expression = np.clip(smoothed.expression, 0.0, 1.0)
    return smoothed


def neutral_curves(motion: Motion) -> np.ndarray:
    """(E + 6,) the neutral pose: no expression, frontal, at the mean position."""
    e = motion.expression.shape[1]
    return np.concatenate([np.zeros(e), neutral_rotation(), np.zeros(3)])


def policy_value(last: np.ndarray | None, neutral: np.ndarray, since: float) -> np.ndarray:
    """A curve ``since`` seconds after its face was lost (``last`` its last value; None: never seen)."""
    if last is None:
        return neutral.copy()
    fade = np.clip((since - HOLD_S) / FADE_S, 0.0, 1.0)
    return (1 - fade) * last + fade * neutral


def fill_gaps(motion: Motion) -> Motion:
    """Every frame's curves, no-face frames by the policy (see the module's docstring)."""
    curves, neutral = motion.curves.copy(), neutral_curves(motion)
    last, lost_at = None, 0.0
    for i in range(len(curves)):
        if motion.face[i]:
            last, lost_at = curves[i], float(motion.times[i])
        else:
            curves[i] = policy_value(last, neutral, float(motion.times[i]) - lost_at)
    return motion.with_curves(curves)


def gaps(face: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) frame index of every run of frames without a face."""
    runs, start = [], None
    for i, seen in enumerate(face):
        if not seen and start is None:
            start = i
        if seen and start is not None:
            runs.append((start, i - 1))
            start = None
    if start is not None:
        runs.append((start, len(face) - 1))
    return runs


def key_times(motion: Motion) -> np.ndarray:
    """Times of the keyframes that reproduce the filled curves under linear interpolation: every frame
    with a face, and in each gap its first and last frame and the policy's corners (hold end, fade end)."""
    times = [motion.times[motion.face]]
    for first, last in gaps(motion.face):
        t0, t1 = float(motion.times[first]), float(motion.times[last])
        lost_at = float(motion.times[first - 1]) if first > 0 else None
        corners = [] if lost_at is None else [lost_at + HOLD_S, lost_at + HOLD_S + FADE_S]
        times.append(np.array([t0, t1, *(c for c in corners if t0 < c < t1)]))
    return np.unique(np.concatenate(times))


def sample(motion: Motion, times: np.ndarray) -> np.ndarray:
    """The filled curves at ``times``: frame values at frame times, the policy between gap frames."""
    filled = fill_gaps(motion).curves
    neutral, out = neutral_curves(motion), np.empty((len(times), filled.shape[1]))
    for k, t in enumerate(times):
        i = int(np.searchsorted(motion.times, t, side="right")) - 1
        if i >= 0 and np.isclose(motion.times[i], t, atol=1e-9):
            out[k] = filled[i]
            continue
        seen = np.flatnonzero(motion.face[: i + 1])  # t lies inside a gap: the policy at t itself
        last = filled[seen[-1]] if len(seen) else None
        out[k] = policy_value(last, neutral, t - (motion.times[seen[-1]] if len(seen) else 0.0))
    return out


def head_rotation_matrices(rotation: np.ndarray) -> np.ndarray:
    """(N, 3) pitch/yaw/roll -> (N, 3, 3) rotations of model space into camera space."""
    return euler_to_matrix(torch.from_numpy(np.asarray(rotation, np.float64))).numpy()
