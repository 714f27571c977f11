"""engine.tracking: the one face tracker that video reconstruction and training data share."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from engine.crop import crop_params_from_landmarks
from engine.tracking import CropTracker, landmarks_jumped

FRAME = np.zeros((8, 8, 3), np.uint8)


def _face(shift: float = 0.0):
    points = np.random.default_rng(0).uniform(40, 80, (68, 2)) + shift
    return SimpleNamespace(landmarks=points)


def test_a_track_starts_with_the_first_face_and_after_a_lost_one():
    tracker = CropTracker()
    steps = [
        tracker.step(FRAME, faces, t / 25) for t, faces in enumerate([[_face()], [_face(1)], [], [_face(2)]])
    ]
    assert [s.new_track if s else None for s in steps] == [True, False, None, True]
    assert steps[0].box == crop_params_from_landmarks(_face().landmarks)  # a new track is not smoothed


def test_the_crop_is_smoothed_within_a_track_and_restarts_at_a_cut():
    cuts = iter([False, False, True])
    tracker = CropTracker(cuts=lambda frame: next(cuts))
    tracker.step(FRAME, [_face()], 0.0)
    moved = tracker.step(FRAME, [_face(4)], 0.04)
    raw = crop_params_from_landmarks(_face(4).landmarks)
    assert not moved.new_track and moved.box.cx < raw.cx  # the smoothed box lags behind
    cut = tracker.step(FRAME, [_face(8)], 0.08)
    assert cut.new_track and cut.box == crop_params_from_landmarks(_face(8).landmarks)


def test_the_cut_detector_sees_every_frame_even_without_a_face():
    seen = []
    tracker = CropTracker(cuts=lambda frame: seen.append(frame) or False)
    for faces in ([_face()], [], [_face()]):
        tracker.step(FRAME, faces)
    assert len(seen) == 3


def test_a_cut_the_caller_found_ends_the_track_without_asking_cuts():
    asked = []
    tracker = CropTracker(cuts=lambda frame: asked.append(frame) or False)
    tracker.step(FRAME, [_face()], 0.0, cut=False)
    assert not tracker.step(FRAME, [_face(4)], 0.04, cut=False).new_track
    cut = tracker.step(FRAME, [_face(8)], 0.08, cut=True)
    assert cut.new_track and cut.box == crop_params_from_landmarks(_face(8).landmarks)
    assert asked == []


def test_a_landmark_jump_ends_the_track_only_when_asked():
    face = _face().landmarks
    assert not landmarks_jumped(face, face + 1.0, 0.2) and landmarks_jumped(face, face + 30.0, 0.2)
    by_landmarks, by_default = CropTracker(landmark_jump=0.2), CropTracker()
    for tracker in (by_landmarks, by_default):
        tracker.step(FRAME, [_face()])
    assert by_landmarks.step(FRAME, [_face(30)]).new_track
    assert not by_default.step(FRAME, [_face(30)]).new_track


def test_restart_starts_a_track_at_this_frame():
    tracker = CropTracker()
    tracker.step(FRAME, [_face()], 0.0)
    tracked = tracker.step(FRAME, [_face(4)], 0.04)
    again = tracker.restart(tracked, 0.04)
    assert again.new_track and again.box == crop_params_from_landmarks(_face(4).landmarks)
    assert not tracker.step(FRAME, [_face(5)], 0.08).new_track
