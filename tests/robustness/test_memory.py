"""Memory stays flat in a video's length: every stage of the video pipeline holds a bounded number of
frames (decoded ahead, finished behind), and every per-frame output goes to disk as it is made."""

from __future__ import annotations

import numpy as np

from tests.conftest import SAMPLE


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


def test_resident_memory_does_not_grow_with_the_number_of_frames(tmp_path, fast_reconstructor):
    from engine.io.image import load_image
    from engine.io.video import VideoWriter
    from engine.reconstruct.sequence import FrameRecorder
    from engine.reconstruct.video import reconstruct_video

    image = load_image(SAMPLE)[::2, ::2]
    clip = tmp_path / "long.mp4"
    with VideoWriter(clip, 25) as writer:
        for i in range(360):
            writer.write(np.ascontiguousarray(np.roll(image, int(10 * np.sin(i / 9)), axis=1)))
    rss: dict[int, float] = {}
    recorder = FrameRecorder(max_frames=0)  # as the app's video job: nothing kept

    def progress(done: int, _total: int) -> None:
        if done in (60, 360):
            rss[done] = _rss_mb()

    stats = reconstruct_video(
        fast_reconstructor,
        clip,
        tmp_path / "out",
        progress=progress,
        animation=True,
        preview=True,
        on_frame=recorder.record,
    )
    assert stats["frames"] == stats["faces"] == 360
    growth = rss[360] - rss[60]
    # 300 more frames of 256 x 256 would be 56 MB held as images, far more as reconstructions
    assert growth < 12, f"resident memory grew {growth:.1f} MB over 300 frames"
