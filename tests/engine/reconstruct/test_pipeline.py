"""The video pipeline's stages: decoding ahead (prefetch) and finishing behind (OrderedWorker) keep
the frame order, hold a bounded number of items, and hand every error to the caller's thread; the
face tracker detects once and then follows the face, detecting again on a cut or a loss."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from engine.reconstruct.pipeline import OrderedWorker, prefetch


def test_prefetch_keeps_the_order_and_runs_at_most_depth_ahead():
    made = []

    def items():
        for i in range(20):
            made.append(i)
            yield i

    seen = []
    for item in prefetch(items(), depth=2):
        time.sleep(0.01)
        assert len(made) - len(seen) <= 4  # the queue (2), the one being put, the one taken
        seen.append(item)
    assert seen == list(range(20))


def test_prefetch_raises_the_producers_error_where_its_item_would_be():
    def items():
        yield 1
        raise ValueError("damaged")

    got = []
    with pytest.raises(ValueError, match="damaged"):
        for item in prefetch(items()):
            got.append(item)
    assert got == [1]


def test_breaking_out_of_prefetch_stops_the_producer_and_closes_its_source():
    closed = threading.Event()

    def items():
        try:
            yield from range(10**6)
        finally:
            closed.set()

    for item in prefetch(items(), depth=2):
        if item == 3:
            break
    assert closed.wait(5)
    assert not [t for t in threading.enumerate() if t.name == "prefetch"]


def test_the_ordered_worker_runs_calls_in_order_and_raises_the_first_error_on_the_caller():
    done = []
    with OrderedWorker(depth=2) as worker:
        for i in range(10):
            worker.submit(done.append, i)
    assert done == list(range(10))

    def fail(i):
        if i == 2:
            raise OSError("disk full")
        done.append(i)

    done.clear()
    worker = OrderedWorker(depth=1)
    with pytest.raises(OSError, match="disk full"):
        for i in range(50):
            worker.submit(fail, i)
            time.sleep(0.005)
        worker.close()
    worker.close()  # raised once; closing again is quiet
    assert done == [0, 1]  # nothing after the failed call ran


class _Detector:
    name = "fake"

    def __init__(self):
        self.detected = self.tracked = 0
        self.lose_at: set[int] = set()

    def detect(self, image):
        from engine.detect import Face

        self.detected += 1
        return [Face(np.zeros(4), np.zeros((68, 2)), 1.0, np.zeros((468, 3)))]

    def track(self, image, previous):
        self.tracked += 1
        return None if int(image[0, 0, 0]) in self.lose_at else previous


def test_the_tracker_detects_once_then_follows_and_detects_again_on_a_cut_or_a_loss():
    from engine.detect.tracker import FaceTracker

    detector = _Detector()
    detector.lose_at = {5}
    tracker = FaceTracker(detector)
    frames = [np.full((4, 4, 3), i, np.uint8) for i in range(10)]
    for i, frame in enumerate(frames):
        assert tracker(frame, redetect=i == 7) is not None
    # frame 0 detects; 1-4 track; 5 loses it and detects; 6 tracks; 7 is a cut; 8, 9 track
    assert tracker.detections == detector.detected == 3
    assert tracker.tracked == 7 and detector.tracked == 8


def test_mediapipe_tracking_follows_the_sample_face_as_detection_finds_it(sample_image):
    from engine.detect import create_detector

    detector = create_detector("auto")
    if not hasattr(detector, "track"):
        pytest.skip("the detector backend cannot track")
    face = detector.detect(sample_image)[0]
    moved = np.ascontiguousarray(np.roll(sample_image, 12, axis=1))
    tracked, detected = detector.track(moved, face), detector.detect(moved)[0]
    iod = np.linalg.norm(detected.landmarks[36] - detected.landmarks[45])
    assert np.abs(tracked.landmarks - detected.landmarks).max() < 0.05 * iod
    assert detector.track(np.zeros_like(sample_image), face) is None  # no face there: lost
