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

from engine.errors import LiveSourceError

Frame = tuple[int, float, np.ndarray]


def paced(
    frames: Iterator[Frame], clock: Callable[[], float] = time.monotonic, speed: float = 1.0
) -> Iterator[Frame]:
    """A file's frames at their own timestamps (``speed`` times faster), as a camera would
    deliver them."""
    start = None
    for index, seconds, frame in frames:
        seconds = seconds / speed
        start = clock() - seconds if start is None else start
        wait = start + seconds - clock()
        if wait > 0:
            time.sleep(wait)
        yield index, seconds, frame


def capture_frames(spec: int | str) -> Iterator[Frame]:
    """A camera (its index) or a stream URL as RGB frames: opened now (OSError if it will not
    open), through OpenCV, else PyAV for a URL OpenCV cannot read."""
    import cv2

    capture = cv2.VideoCapture(spec)
    if capture.isOpened():
        return _read_capture(capture)
    capture.release()
    if isinstance(spec, str):
        return _av_frames(spec)
    raise LiveSourceError(f"cannot open camera {spec}: no such camera, or it is in use by another program")


def _read_capture(capture) -> Iterator[Frame]:
    import cv2

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


def _av_frames(url: str) -> Iterator[Frame]:
    import av

    try:
        container = av.open(url, timeout=10)
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise LiveSourceError(f"cannot open the live source {url} ({exc})") from exc
    if not container.streams.video:
        container.close()
        raise LiveSourceError(f"the live source {url} has no video stream")
    return _read_av(container)


def _read_av(container) -> Iterator[Frame]:
    start = time.monotonic()
    try:
        for index, frame in enumerate(container.decode(video=0)):
            yield index, time.monotonic() - start, frame.to_ndarray(format="rgb24")
    finally:
        container.close()


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
    def open(cls, spec: int | str | Path, speed: float = 1.0) -> LiveSource:
        """A camera index, a URL, or a video file (paced at its frame rate, times ``speed``)."""
        if isinstance(spec, int) or (isinstance(spec, str) and spec.strip().isdigit()):
            return cls(capture_frames(int(spec)))
        if Path(spec).is_file():
            from engine.io.video import iter_frames, probe

            probe(spec)  # a file that is not a video: VideoReadError now, not on the reader thread
            return cls(paced(iter_frames(spec), speed=speed))
        if "://" not in str(spec):
            raise LiveSourceError(
                f"{spec}: no such file (a live source is a camera number, a URL or a video file)"
            )
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

    @property
    def ended(self) -> bool:
        """The source has no more frames (its end, an error, or stop())."""
        return self._ended and self._slot is None

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def __enter__(self) -> LiveSource:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


# ------------------------------------------------------------------------- live reconstruction


class LiveRecording:
    """What a live session records: frames.jsonl as `cest reconstruct VIDEO` writes it, then, when it
    ends, animation.glb and blendshapes.csv by the same writers (engine.reconstruct.animation)."""

    def __init__(self, folder: str | Path, source: str):
        from engine.io.atomic import atomic_path
        from engine.reconstruct.person import MainShape

        self.folder, self.source = Path(folder), source
        self.folder.mkdir(parents=True, exist_ok=True)
        self._atomic = atomic_path(self.folder / "frames.jsonl")
        self._lines = open(self._atomic.__enter__(), "w")  # noqa: SIM115 - closed in finish()
        self.main = MainShape()
        self.frames, self.size = 0, (0, 0)
        self.first: float | None = None
        self.last: float | None = None

    def add(self, index: int, seconds: float, frame: np.ndarray, recon, track: int) -> None:
        from engine.io.mesh import to_json
        from engine.reconstruct.video import _frame_record

        first = self.first = seconds if self.first is None else self.first
        self.last, self.size = seconds, (frame.shape[1], frame.shape[0])
        if recon is not None:
            self.main.add(track, recon.params)
        record = _frame_record(recon, self.frames, Path(self.source), seconds - first, track)
        record["source_frame"] = index
        self._lines.write(to_json(record) + "\n")
        self.frames += 1

    def finish(self, model) -> list[Path]:
        """Close frames.jsonl; write the animation if any frame had a face. Returns the written paths."""
        from engine.reconstruct.animation import write_animation

        self._lines.close()
        self._atomic.__exit__(None, None, None)
        written = [self.folder / "frames.jsonl"]
        if self.main.params is not None:
            span = (self.last or 0) - (self.first or 0)
            fps = (self.frames - 1) / span if self.frames > 1 and span > 0 else 30.0
            params = self.main.params
            written += write_animation(self.folder, model, params.identity, params.albedo, fps, self.size)
        return written


class LiveSession:
    """Reconstructs a live source as it comes: the face tracked from frame to frame, one person's
    identity and reflectance as running means, the viewpoint smoothed, as for a video file.

    ``run`` reconstructs the newest frame (the source drops the frames it had no time for) while a
    second thread finishes the one before (reflectance and light, texture detail, running albedo,
    recording, ``on_frame``):
    at most one frame waits between them, so nothing queues. ``record(folder)`` and ``record(None)``
    may be called from any thread; they take effect between frames."""

    def __init__(self, reconstructor, source: str = "live"):
        from engine.detect.tracker import FaceTracker
        from engine.reconstruct.person import PersonAlbedo, Track
        from engine.reconstruct.shots import CutDetector
        from engine.tracking import CropTracker

        self.reconstructor, self.source = reconstructor, source
        self.track, self.cuts = Track(), CutDetector()
        self.tracker = FaceTracker(reconstructor.detector)  # which detector call finds the face
        self.crops = CropTracker()  # its smoothed crop box, and where a track ends
        self._albedo = PersonAlbedo()
        self._recording: LiveRecording | None = None
        self._wanted: tuple[str | Path | None] | None = None  # a record() request not yet applied
        self.recorded: list[Path] = []
        self.frames = self.faces = 0

    def record(self, folder: str | Path | None) -> None:
        self._wanted = (folder,)

    @property
    def recording(self) -> bool:
        return self._recording is not None

    def _apply_record_request(self) -> None:
        wanted, self._wanted = self._wanted, None
        if wanted is None:
            return
        self._finish_recording()
        if wanted[0] is not None:
            self._recording = LiveRecording(wanted[0], self.source)

    def _finish_recording(self) -> None:
        if self._recording is not None:
            recording, self._recording = self._recording, None
            self.recorded = recording.finish(self.reconstructor.model)

    def run(
        self,
        live: LiveSource,
        on_frame: Callable | None = None,
        stop: Callable[[], bool] | None = None,
    ) -> dict:
        """Until the source ends or ``stop()``; ``on_frame(index, seconds, frame, recon or None)``
        runs on the finishing thread. Returns the figures (frames, faces, fps, dropped)."""
        from engine.reconstruct.pipeline import OrderedWorker, prefetch
        from engine.reconstruct.video import _frame

        started = time.perf_counter()
        taken = threading.Semaphore(1)  # the networks took the last tracked frame: find the next
        ending = threading.Event()
        ended = lambda: ending.is_set() or (stop is not None and stop())  # noqa: E731

        def found() -> Iterator:
            """The newest frame and its face, found while the networks work on the one before."""
            while not ended():
                if not taken.acquire(timeout=0.1):
                    continue
                item = None
                while item is None and not ended():
                    item = live.latest(timeout=0.1)
                    if item is None and live.ended:
                        return
                if item is None:
                    return
                index, seconds, frame = item
                cut = self.cuts(frame)
                yield index, seconds, frame, cut, self.tracker(frame, redetect=cut)

        frames = prefetch(found(), depth=1)
        try:
            with OrderedWorker(depth=1, name="live-finish") as behind:
                for index, seconds, frame, cut, face in frames:
                    taken.release()
                    if ended():
                        break
                    recon = _frame(self.reconstructor, self.track, self.crops, frame, seconds, cut, face)
                    behind.submit(self._finish, index, seconds, frame, recon, self.track.number, on_frame)
        finally:
            ending.set()  # before closing the finder's thread: it stops at its next look
            frames.close()
            self._wanted = None
            self._finish_recording()
        seconds = time.perf_counter() - started
        return {
            "frames": self.frames,
            "faces": self.faces,
            "seconds": round(seconds, 2),
            "fps": round(self.frames / max(seconds, 1e-6), 2),
            "read": live.read,
            "dropped": live.dropped,
            "recorded": [str(p) for p in self.recorded],
        }

    def _finish(self, index, seconds, frame, recon, number, on_frame) -> None:
        if recon is not None:
            self._albedo.finish(self.reconstructor, recon, number)
        self.frames += 1
        self.faces += recon is not None
        self._apply_record_request()
        if self._recording is not None:
            self._recording.add(index, seconds, frame, recon, number)
        if on_frame is not None:
            on_frame(index, seconds, frame, recon)
