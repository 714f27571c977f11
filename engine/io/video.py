"""Video decoding and encoding with PyAV, with clear errors for files that will not decode."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from engine.errors import VideoReadError
from engine.io.atomic import atomic_path, write_error

log = logging.getLogger("cest")


@dataclass
class VideoInfo:
    path: Path
    fps: float
    frames: int  # an estimate where the container does not say
    width: int
    height: int
    rotation: int  # degrees counter-clockwise the frames must be turned to stand upright
    timing_ok: bool = True  # False: the file's frame rate metadata is unusable (0 fps, say)


MIN_FPS, MAX_FPS = 1.0, 1000.0  # frame rates outside these are broken metadata


def _open(path: Path, options: dict | None = None):
    if not path.exists():
        raise VideoReadError(f"{path}: no such file")
    if not path.is_file():  # a folder, pipe or device: opening it could block for ever
        raise VideoReadError(f"{path}: not a regular file")
    try:
        container = av.open(str(path), options=options or {})
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise VideoReadError(f"{path}: not a readable video ({_reason(exc)})") from exc
    if not container.streams.video:
        container.close()
        raise VideoReadError(f"{path}: has no video stream (audio only?)")
    return container


def probe(path: str | Path) -> VideoInfo:
    path = Path(path)
    with _open(path) as container:
        stream = container.streams.video[0]
        fps, timing_ok = _frame_rate(stream, container, path)
        frames = stream.frames or int(round(float(container.duration or 0) / 1e6 * fps))
        rotation = _stream_rotation(stream)
        return VideoInfo(
            path, fps, frames, stream.codec_context.width, stream.codec_context.height, rotation, timing_ok
        )


def _plausible(rate) -> bool:
    return rate is not None and MIN_FPS <= float(rate) <= MAX_FPS


def _frame_rate(stream, container, path: Path) -> tuple[float, bool]:
    """(frames per second, whether the metadata's rate was usable). A broken rate (0 fps) is warned
    about and replaced by frames / duration, else 25."""
    rate = stream.average_rate or stream.guessed_rate
    if _plausible(rate):
        return float(rate), True
    seconds = float(container.duration or 0) / 1e6
    fps = stream.frames / seconds if stream.frames and seconds else 0.0
    fps = fps if _plausible(fps) else 25.0
    log.warning(
        "%s: the frame rate in its metadata (%s fps) is unusable; decoding every frame at %.3g fps",
        path,
        f"{float(rate):.3g}" if rate else 0,
        fps,
    )
    return fps, False


def _stream_rotation(stream) -> int:
    """Display rotation from the stream's side data or metadata (phone videos), in degrees."""
    try:
        value = stream.metadata.get("rotate")
        if value is not None:
            return -int(float(value)) % 360
    except (AttributeError, ValueError):
        pass
    return 0


def _upright(frame, image: np.ndarray, fallback: int) -> np.ndarray:
    rotation = getattr(frame, "rotation", None)
    degrees = int(rotation) if rotation is not None else fallback
    turns = (round(degrees / 90)) % 4
    return np.ascontiguousarray(np.rot90(image, turns)) if turns else image


MAX_BAD_PACKETS = 50  # damaged packets skipped before a file is given up as unreadable from there on


def iter_frames(
    path: str | Path, problems: list[str] | None = None
) -> Iterator[tuple[int, float, np.ndarray]]:
    """(index, time in seconds, HxWx3 uint8 RGB upright) for every decodable frame.

    A damaged packet is skipped and decoding goes on; a file cut off (or unreadable from some point)
    yields every frame before the damage. What went wrong is logged and appended to ``problems``.
    A file with no decodable frame raises VideoReadError. Times come from the frames' timestamps,
    so variable frame rates are kept."""
    path = Path(path)
    info = probe(path)
    decoded, notes = 0, []
    # With broken timing metadata FFmpeg's edit-list handling drops most frames: ignore the edit list.
    with _open(path, None if info.timing_ok else {"ignore_editlist": "1"}) as container:
        stream = container.streams.video[0]
        # Slice threads, not frame threads: a frame-threaded decoder drops the frames in flight when
        # it meets a damaged packet, and decoding costs little beside reconstructing a frame.
        stream.thread_type = "SLICE"
        for frame in _decode(container, stream, path, notes):
            image = _upright(frame, frame.to_ndarray(format="rgb24"), info.rotation)
            time = float(frame.time) if frame.time is not None and info.timing_ok else decoded / info.fps
            yield decoded, time, image
            decoded += 1
    if decoded == 0:
        raise VideoReadError(f"{path}: cannot decode any frame{f' ({notes[0]})' if notes else ''}")
    for note in notes:
        message = f"{path}: {note}; the {decoded} frames decoded are kept"
        log.warning("%s", message)
        if problems is not None:
            problems.append(message)


def _decode(container, stream, path: Path, notes: list[str]):
    """The stream's frames, packet by packet: a damaged packet is skipped, a demuxing error ends
    the file, and the decoder is drained at the end either way (so no decoded frame is lost)."""
    packets, bad = container.demux(stream), 0
    while True:
        try:
            packet = next(packets)
        except StopIteration:
            return
        except (av.error.FFmpegError, ValueError) as exc:
            notes.append(f"the file is damaged or cut off ({_reason(exc)})")
            packet = None  # drain what the decoder holds
        try:
            frames = packet.decode() if packet is not None else stream.codec_context.decode(None)
        except av.error.EOFError:
            return
        except (av.error.FFmpegError, ValueError) as exc:
            bad += 1
            if bad == 1:
                notes.append(f"skipped damaged data ({_reason(exc)})")
            if packet is None or bad > MAX_BAD_PACKETS:
                if packet is not None:
                    notes.append(f"gave up after {bad} damaged packets")
                return
            continue
        yield from frames
        if packet is None:
            return


def _reason(exc: Exception) -> str:
    """FFmpeg's own words, without the "[Errno 1094995529]" code or the path repeated."""
    text = getattr(exc, "strerror", None) or str(exc)
    return text.strip().splitlines()[0][:200] if text.strip() else type(exc).__name__


class VideoWriter:
    """H.264 MP4 writer (frames are HxWx3 uint8 RGB of one size, even width and height).

    Written to a temporary file beside ``path`` and renamed over it by ``close()``, so a killed run
    or a failure never leaves a broken file where a good one stood. Leaving a ``with`` block by an
    exception discards the new file (KeyboardInterrupt keeps the frames written so far); so does
    closing a writer that got no frame."""

    def __init__(self, path: str | Path, fps: float):
        self.path = Path(path)
        self._files = ExitStack()
        self._tmp = self._files.enter_context(atomic_path(self.path, suffix=self.path.suffix or ".mp4"))
        try:
            self._container = av.open(str(self._tmp), mode="w")
            self._stream = self._container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        except BaseException as exc:
            self._files.__exit__(type(exc), exc, exc.__traceback__)
            raise
        self._stream.pix_fmt = "yuv420p"
        self._stream.options = {"crf": "20", "preset": "veryfast"}
        self._opened = False
        self._closed = False

    def write(self, image: np.ndarray) -> None:
        if not self._opened:
            self._stream.height, self._stream.width = image.shape[0] & ~1, image.shape[1] & ~1
            self._opened = True
        image = image[: self._stream.height, : self._stream.width]
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        try:
            for packet in self._stream.encode(frame):
                self._container.mux(packet)
        except OSError as err:  # a full disk: name the file being made, not its temporary name
            raise write_error(err, self.path) from err

    def close(self) -> None:
        """Finish the file and put it in place (nothing is put in place when no frame was written)."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._opened:
                for packet in self._stream.encode():
                    self._container.mux(packet)
            self._container.close()
        except BaseException as exc:
            self._files.__exit__(type(exc), exc, exc.__traceback__)
            raise
        if self._opened:
            self._files.close()
        else:
            self.abort()

    def abort(self) -> None:
        """Drop the new file; whatever stood at ``path`` before stays."""
        self._closed = True
        try:
            self._container.close()
        except (av.error.FFmpegError, OSError, ValueError):
            pass
        try:
            self._files.__exit__(_Discard, _Discard(), None)
        except _Discard:
            pass

    def __enter__(self):
        return self

    def __exit__(self, kind, exc, tb):
        if kind is None or issubclass(kind, KeyboardInterrupt):
            self.close()
        else:
            self.abort()


class _Discard(Exception):
    """Thrown into the temporary file's context to make it delete the file."""
