"""The window's video state without Qt: messages in, which frame to show and load out."""

from __future__ import annotations

from types import SimpleNamespace

from cest_studio.video_session import FRAME_CACHE, VideoSession


def test_info_and_frames_from_the_job():
    video = VideoSession(path="/clips/a.mp4", out_dir="/tmp/job")
    assert (video.frames, video.fps, video.size) == (0, 25.0, None)
    video.apply_info({"frames": "12", "fps": 30, "width": 640, "height": 480})
    assert (video.frames, video.fps, video.size) == (12, 30.0, (640, 480))
    video.apply_info({"frames": None, "fps": None})  # a container that does not say
    assert (video.frames, video.fps, video.size) == (0, 25.0, (0, 0))
    assert video.add_frame(3, "/tmp/job/3.npz") is True  # the first face is shown at once
    assert video.add_frame(5, "/tmp/job/5.npz") is False
    assert video.add_frame(1, "/tmp/job/1.npz") is False
    assert video.frame_files() == ["/tmp/job/1.npz", "/tmp/job/3.npz", "/tmp/job/5.npz"]
    video.finish({"frames": 12, "faces": 3})
    assert video.done and video.ended and video.summary["faces"] == 3


def test_scrubbing_shows_the_nearest_earlier_face():
    video = VideoSession(path="a.mp4", out_dir="job")
    for index in (2, 4):
        video.add_frame(index, f"{index}.npz")
    assert video.shown_frame(4) == 4
    assert video.shown_frame(3) == 2  # no face in frame 3
    assert video.shown_frame(9) == 4
    assert video.shown_frame(1) is None  # nothing reconstructed up to there


def test_only_the_newest_wish_waits_while_a_frame_loads():
    video = VideoSession(path="a.mp4", out_dir="job")
    assert video.want(1) is True  # idle: the caller loads it
    assert video.take_wanted() == 1 and video.take_wanted() is None
    video.loading = True
    assert video.want(2) is False and video.want(3) is False
    video.loading = False
    assert video.take_wanted() == 3


def test_the_frame_cache_is_bounded_oldest_first():
    video = VideoSession(path="a.mp4", out_dir="job")
    for index in range(FRAME_CACHE + 5):
        video.keep(SimpleNamespace(frame=index))
    assert len(video.cache) == FRAME_CACHE
    assert min(video.cache) == 5 and max(video.cache) == FRAME_CACHE + 4
