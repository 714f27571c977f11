"""A video file played as a paced live source: a slow consumer gets the newest frames, the rest are
dropped (never queued), and a fast one gets them all."""

from __future__ import annotations

import time

import numpy as np
import pytest

from engine.reconstruct.live import LiveSource


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    from engine.io.video import VideoWriter

    path = tmp_path_factory.mktemp("live") / "clip.mp4"
    with VideoWriter(path, 30) as writer:
        for i in range(24):  # 0.8 s
            writer.write(np.full((64, 64, 3), i * 10, np.uint8))
    return path


def _consume(live: LiveSource, work_s: float):
    got, lags = [], []
    while (item := live.latest(timeout=5)) is not None:
        got.append(item[0])
        lags.append(live.read - 1 - item[0])  # frames read after this one, when it was taken
        time.sleep(work_s)
    return got, lags


def test_a_slow_consumer_gets_the_newest_frames_and_the_rest_are_dropped(clip):
    started = time.monotonic()
    with LiveSource.open(clip) as live:
        got, lags = _consume(live, work_s=0.1)  # 10 frames/s against a 30 frames/s source
    elapsed = time.monotonic() - started
    assert 0.7 < elapsed < 2.5  # paced at the file's own rate, not as fast as it decodes
    assert got == sorted(got) and len(set(got)) == len(got)
    assert live.read == 24 and live.delivered == len(got) and live.read == live.delivered + live.dropped
    assert live.dropped >= 10 and len(got) <= 14
    assert max(lags) <= 1  # never more than a frame behind: nothing queues up


def test_a_fast_consumer_gets_every_frame(clip):
    with LiveSource.open(clip) as live:
        got, _ = _consume(live, work_s=0.0)
    assert got == sorted(got) and len(got) >= 22 and live.dropped <= 2  # all, but for a busy machine's hiccup


def test_a_failing_live_session_stops_its_threads_and_raises(tmp_path, monkeypatch):
    """An error in the networks ends the session: its threads stop, the error reaches the caller."""
    import threading

    import engine.reconstruct.video
    from engine.reconstruct.live import LiveSession
    from engine.reconstruct.reconstructor import Reconstructor
    from tests.conftest import make_video

    def broken(*args, **kwargs):
        raise RuntimeError("the networks failed")

    monkeypatch.setattr(engine.reconstruct.video, "_frame", broken)
    clip = make_video(tmp_path / "clip.mp4", frames=20)
    with LiveSource.open(clip) as live, pytest.raises(RuntimeError, match="networks failed"):
        LiveSession(Reconstructor(method="fit")).run(live)
    assert not [t for t in threading.enumerate() if t.name in ("prefetch", "live-finish")]
