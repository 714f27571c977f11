"""A live source: frames from a camera, a stream, or a video file played at its own pace, of which
the consumer always gets the newest. A reader thread keeps one slot: a frame the consumer did not
take before the next one arrived is dropped, never queued, so a slow machine lags by at most one
frame instead of falling further behind.

    with LiveSource.open("clip.mp4") as live:      # or 0 (the first camera), or "rtsp://..."
        while (item := live.latest()) is not None:
            index, seconds, frame = item
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

Frame = tuple[int, float, np.ndarray]


def paced(frames: Iterator[Frame], clock: Callable[[], float] = time.monotonic) -> Iterator[Frame]:
    """A file's frames at their own timestamps, as a camera would deliver them."""
    start = None
    for index, seconds, frame in frames:
        start = clock() - seconds if start is None else start
        wait = start + seconds - clock()
        if wait > 0:
            time.sleep(wait)
        yield index, seconds, frame


def capture_frames(spec: int | str) -> Iterator[Frame]:
    """A camera (its index) or a stream URL, through OpenCV, as RGB frames."""
    import cv2

    capture = cv2.VideoCapture(spec)
    if not capture.isOpened():
        raise OSError(f"cannot open the live source {spec!r}")
    start, index = time.monotonic(), 0
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                return
            yield index, time.monotonic() - start, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            index += 1
    finally:
        capture.release()


class LiveSource:
    """The newest frame of ``frames`` (an iterator that delivers at its own pace), read on a thread."""

    def __init__(self, frames: Iterator[Frame]):
        self._frames = frames
        self._slot: Frame | None = None
        self._ended = False
        self._stop = threading.Event()
        self._ready = threading.Condition()
        self.read = self.dropped = self.delivered = 0
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="live-source", daemon=True)

    @classmethod
    def open(cls, spec: int | str | Path) -> LiveSource:
        """A camera index, a URL, or a video file (paced at its frame rate)."""
        if isinstance(spec, int) or (isinstance(spec, str) and spec.isdigit()):
            return cls(capture_frames(int(spec)))
        if Path(spec).is_file():
            from engine.io.video import iter_frames

            return cls(paced(iter_frames(spec)))
        return cls(capture_frames(str(spec)))

    def _run(self) -> None:
        try:
            for item in self._frames:
                if self._stop.is_set():
                    break
                with self._ready:
                    self.dropped += self._slot is not None  # the consumer never took it
                    self._slot = item
                    self.read += 1
                    self._ready.notify()
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            self.error = exc
        finally:
            with self._ready:
                self._ended = True
                self._ready.notify_all()

    def start(self) -> LiveSource:
        self._thread.start()
        return self

    def latest(self, timeout: float | None = None) -> Frame | None:
        """The newest frame not yet taken (waits for one); None when the source ended or timed out."""
        with self._ready:
            if not self._ready.wait_for(lambda: self._slot is not None or self._ended, timeout):
                return None
            item, self._slot = self._slot, None
        if item is not None:
            self.delivered += 1
        elif self.error is not None:
            raise self.error
        return item

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def __enter__(self) -> LiveSource:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
