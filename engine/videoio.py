"""Video decoding and encoding with PyAV, with clear errors for files that will not decode."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from engine.errors import VideoReadError


@dataclass
class VideoInfo:
    path: Path
    fps: float
    frames: int  # an estimate where the container does not say
    width: int
    height: int
    rotation: int  # degrees counter-clockwise the frames must be turned to stand upright


def _open(path: Path):
    if not path.exists():
        raise VideoReadError(f"{path}: no such file")
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise VideoReadError(f"{path}: not a readable video ({exc})") from exc
    if not container.streams.video:
        container.close()
        raise VideoReadError(f"{path}: has no video stream (audio only?)")
    return container


def probe(path: str | Path) -> VideoInfo:
    path = Path(path)
    with _open(path) as container:
        stream = container.streams.video[0]
        fps = float(stream.average_rate or stream.guessed_rate or 25)
        frames = stream.frames or int(round(float(container.duration or 0) / 1e6 * fps))
        rotation = _stream_rotation(stream)
        return VideoInfo(path, fps, frames, stream.codec_context.width, stream.codec_context.height, rotation)


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


def iter_frames(path: str | Path) -> Iterator[tuple[int, float, np.ndarray]]:
    """(index, time in seconds, HxWx3 uint8 RGB upright) for every decodable frame."""
    path = Path(path)
    info = probe(path)
    decoded = 0
    with _open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        try:
            for frame in container.decode(stream):
                image = _upright(frame, frame.to_ndarray(format="rgb24"), info.rotation)
                time = float(frame.time) if frame.time is not None else decoded / info.fps
                yield decoded, time, image
                decoded += 1
        except (av.error.FFmpegError, ValueError) as exc:
            if decoded == 0:
                raise VideoReadError(f"{path}: cannot decode ({exc})") from exc
    if decoded == 0:
        raise VideoReadError(f"{path}: no decodable frames")


class VideoWriter:
    """H.264 MP4 writer (frames are HxWx3 uint8 RGB of one size, even width and height)."""

    def __init__(self, path: str | Path, fps: float):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._container = av.open(str(self.path), mode="w")
        self._stream = self._container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        self._stream.pix_fmt = "yuv420p"
        self._stream.options = {"crf": "20", "preset": "veryfast"}
        self._opened = False

    def write(self, image: np.ndarray) -> None:
        if not self._opened:
            self._stream.height, self._stream.width = image.shape[0] & ~1, image.shape[1] & ~1
            self._opened = True
        image = image[: self._stream.height, : self._stream.width]
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        for packet in self._stream.encode(frame):
            self._container.mux(packet)

    def close(self) -> None:
        if self._opened:
            for packet in self._stream.encode():
                self._container.mux(packet)
        self._container.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
