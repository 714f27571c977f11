"""Training clips from videos: decode, detect 68 landmarks, crop consistently, cache, cut into clips.

A video is prepared once into a cache file (npz: crops uint8 + landmarks in crop pixels + a
segment id per kept frame), so later epochs and later runs never decode again. A segment is a run
of frames with the same face; a lost face or a cut (a jump of the landmarks) ends it.
"""

from __future__ import annotations

import hashlib
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from engine.crop import crop_image, image_to_crop
from engine.detect import create_detector
from engine.errors import VideoReadError
from engine.io.atomic import atomic_path
from engine.io.video import iter_frames, probe
from engine.tracking import CropTracker, landmarks_jumped
from engine.training.data.cache import cache_root

log = logging.getLogger(__name__)
CACHE_VERSION = 1
CROP_OVERSAMPLE = (
    2  # crop at 2x and area-resize, like inference (engine.reconstruct.reconstructor crops at 256)
)


@dataclass
class VideoConfig:
    image_size: int = 128
    frame_step: int = 1  # keep every n-th frame
    max_frames: int = 0  # 0 = all
    cut_threshold: float = 0.2  # landmark jump, as a fraction of the face size, that ends a segment
    detector: str = "auto"
    cache_dir: str | None = None  # default: $CEST_CACHE or ~/.cache/cest-studio
    erase_marks: bool = False  # photos only: paint out drawn green marks (engine.training.data.images)


@dataclass
class VideoTrack:
    """A prepared video: N kept frames as crops, their landmarks and segment ids."""

    source: str
    crops: np.ndarray  # (N, S, S, 3) uint8
    landmarks: np.ndarray  # (N, 68, 2) float32, crop pixels
    segment: np.ndarray  # (N,) int32; -1 never appears (frames without a face are dropped)

    def __len__(self) -> int:
        return len(self.crops)


def cache_dir(config: VideoConfig) -> Path:
    return cache_root(config.cache_dir) / "clips"


def cache_path(path: Path, config: VideoConfig, detector_name: str) -> Path:
    stat = path.stat()
    key = (
        f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{config.image_size}|{config.frame_step}|"
        f"{config.max_frames}|{config.cut_threshold}|{detector_name}|{CACHE_VERSION}"
    )
    return cache_dir(config) / f"{path.stem}-{hashlib.sha1(key.encode()).hexdigest()[:12]}.npz"


def prepare_video(path: str | Path, config: VideoConfig | None = None, detector=None) -> VideoTrack:
    """The cached track of a video, building the cache on first use. Raises VideoReadError."""
    config = config or VideoConfig()
    path = Path(path)
    if not path.is_file():
        raise VideoReadError(f"{path}: no such file")
    detector = detector or create_detector(config.detector)
    cached = cache_path(
        path, config, getattr(detector, "cache_key", getattr(detector, "name", type(detector).__name__))
    )
    if cached.exists():
        try:
            with np.load(cached, allow_pickle=False) as data:
                return VideoTrack(str(path), data["crops"], data["landmarks"], data["segment"])
        except (OSError, ValueError, KeyError):
            log.warning("%s: unreadable cache, rebuilding", cached)
    track = _build_track(path, config, detector)
    cached.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(cached) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, crops=track.crops, landmarks=track.landmarks, segment=track.segment)
    return track


def _build_track(path: Path, config: VideoConfig, detector) -> VideoTrack:
    size, big = config.image_size, config.image_size * CROP_OVERSAMPLE
    crops, landmarks, segments = [], [], []
    fps = probe(path).fps / config.frame_step
    tracker, segment = CropTracker(fps, landmark_jump=config.cut_threshold), 0
    for index, time, frame in iter_frames(path):
        if index % config.frame_step:
            continue
        if config.max_frames and len(crops) >= config.max_frames:
            break
        tracked = tracker.step(frame, detector.detect(frame), time)
        if tracked is None:
            continue
        if tracked.new_track and crops:
            segment += 1  # clips never span a lost face or a jump
        box = tracked.box
        crop = cv2.resize(crop_image(frame, box, big), (size, size), interpolation=cv2.INTER_AREA)
        crops.append(crop)
        points = tracked.face.landmarks
        lm = (np.asarray(image_to_crop(points, box, big), np.float32) + 0.5) / CROP_OVERSAMPLE - 0.5
        landmarks.append(lm)
        segments.append(segment)
    if not crops:
        raise VideoReadError(f"{path}: no face found in any frame")
    return VideoTrack(
        str(path), np.stack(crops), np.stack(landmarks).astype(np.float32), np.array(segments, np.int32)
    )


_is_cut = landmarks_jumped  # engine.tracking's rule, under the name this module had


def load_videos(
    paths: list[str | Path],
    config: VideoConfig | None = None,
    detector=None,
    problems: list[str] | None = None,
) -> list[VideoTrack]:
    """Prepare every video; skip (with a warning naming the file, also appended to ``problems``)
    those that cannot be read or show no face."""
    config = config or VideoConfig()
    tracks = []
    for path in paths:
        try:
            if detector is None:
                detector = create_detector(config.detector)
            tracks.append(prepare_video(path, config, detector))
        except (VideoReadError, OSError) as err:
            message = str(err) if str(path) in str(err) else f"{path}: {err}"
            warnings.warn(f"skipping video {message}", stacklevel=2)
            if problems is not None:
                problems.append(message)
    return tracks


def track_clip(track: VideoTrack, frames) -> dict:
    """A training clip of some frames of a track: image (K, 3, S, S) uint8, landmarks (K, 68, 2), source."""
    return {
        "image": torch.from_numpy(np.ascontiguousarray(track.crops[frames])).permute(0, 3, 1, 2),
        "landmarks": torch.from_numpy(track.landmarks[frames]),
        "source": track.source,
    }


class VideoClips(torch.utils.data.Dataset):
    """Clips of ``frames`` frames of one segment, picked ``1..max_gap`` frames apart."""

    def __init__(self, tracks: list[VideoTrack], frames: int = 4, max_gap: int = 4):
        self.tracks, self.frames, self.max_gap = tracks, frames, max_gap
        self.items = []  # (track, first frame, last frame + 1) of each segment window
        for t, track in enumerate(tracks):
            for seg in np.unique(track.segment):
                idx = np.flatnonzero(track.segment == seg)
                span = frames * max_gap
                for start in range(idx[0], idx[-1] + 1, span):
                    self.items.append((t, start, int(idx[-1]) + 1))
        if not self.items:
            raise ValueError("no video frames with a face to train on")

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        return self.sample(index, np.random.default_rng(index))

    def sample(self, index: int, rng: np.random.Generator) -> dict:
        t, start, end = self.items[index]
        track = self.tracks[t]
        gaps = rng.integers(1, self.max_gap + 1, self.frames - 1)
        frames = np.minimum(start + np.concatenate([[0], np.cumsum(gaps)]), end - 1)
        frames = np.maximum(frames - max(0, frames[-1] - (end - 1)), start)
        return track_clip(track, frames)
