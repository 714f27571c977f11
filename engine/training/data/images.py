"""Training stills from folders of photos: each photo's largest face is a one-frame clip.

The crops and landmarks of a folder are cached like videos (one npz per folder and file list).
"""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import cv2
import numpy as np
import torch

from engine.crop import crop_image, crop_params_from_landmarks, image_to_crop
from engine.detect import create_detector
from engine.errors import ImageReadError
from engine.io.atomic import atomic_path
from engine.io.formats import IMAGE_SUFFIXES
from engine.io.image import load_image
from engine.training.data.video import CROP_OVERSAMPLE, VideoConfig, VideoTrack, cache_dir, track_clip


def image_files(folder: str | Path) -> list[Path]:
    return sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)


def prepare_folder(folder: str | Path, config: VideoConfig | None = None, detector=None) -> VideoTrack:
    """Crops + landmarks of every photo with a face (one segment per photo), cached."""
    config = config or VideoConfig()
    files = image_files(folder)
    if not files:
        raise ImageReadError(f"{folder}: no images")
    detector = detector or create_detector(config.detector)
    key = "|".join(f"{p.resolve()}:{p.stat().st_mtime_ns}" for p in files)
    key += f"|{config.image_size}|{getattr(detector, 'cache_key', getattr(detector, 'name', ''))}"
    key += "|erased" if config.erase_marks else ""
    cached = cache_dir(config) / f"images-{hashlib.sha1(key.encode()).hexdigest()[:12]}.npz"
    if cached.exists():
        with np.load(cached, allow_pickle=False) as data:
            return VideoTrack(str(folder), data["crops"], data["landmarks"], data["segment"])
    track = _build(files, config, detector, str(folder))
    cached.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(cached) as tmp, open(tmp, "wb") as handle:
        np.savez(handle, crops=track.crops, landmarks=track.landmarks, segment=track.segment)
    return track


def drawn_marks(image: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixels of drawn green marks (lines, and the small dark-green crosses at landmarks).

    Green lines are far greener than red and blue; the crosses, JPEG-blurred, are dark with green
    at least red's level and little blue, a colour skin and hair do not take (their red leads)."""
    r, g, b = (image[..., i].astype(np.int16) for i in range(3))
    lines = g - np.maximum(r, b) > 40
    crosses = (g >= r + 2) & (g - b > 30) & (g < 150)
    marks = (lines | crosses).astype(np.uint8)
    return cv2.dilate(marks, np.ones((3, 3), np.uint8)).astype(bool)


def erase_drawn_marks(image: np.ndarray) -> np.ndarray:
    """Inpaint drawn green marks (drawn_marks) from an RGB uint8 image."""
    marks = drawn_marks(image)
    if not marks.any():
        return image
    return cv2.inpaint(image, marks.astype(np.uint8), 3, cv2.INPAINT_TELEA)


def _build(files: list[Path], config: VideoConfig, detector, source: str) -> VideoTrack:
    size, big = config.image_size, config.image_size * CROP_OVERSAMPLE
    crops, landmarks = [], []
    for path in files:
        try:
            image = load_image(path)
        except (ImageReadError, OSError) as err:
            warnings.warn(f"skipping image {path}: {err}", stacklevel=3)
            continue
        if config.erase_marks:
            image = erase_drawn_marks(image)
        faces = detector.detect(image)
        if not faces:
            warnings.warn(f"skipping image {path}: no face found", stacklevel=3)
            continue
        box = crop_params_from_landmarks(faces[0].landmarks)
        crops.append(cv2.resize(crop_image(image, box, big), (size, size), interpolation=cv2.INTER_AREA))
        lm = (
            np.asarray(image_to_crop(faces[0].landmarks, box, big), np.float32) + 0.5
        ) / CROP_OVERSAMPLE - 0.5
        landmarks.append(lm)
    if not crops:
        raise ImageReadError(f"{source}: no photo with a face")
    return VideoTrack(source, np.stack(crops), np.stack(landmarks), np.arange(len(crops), dtype=np.int32))


class ImageStills(torch.utils.data.Dataset):
    """One-frame clips (the reflectance swap partner of a still is itself)."""

    def __init__(self, tracks: list[VideoTrack]):
        self.items = [(t, i) for t, track in enumerate(tracks) for i in range(len(track))]
        self.tracks = tracks
        if not self.items:
            raise ValueError("no photos with a face to train on")

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        return self.sample(index, None)

    def sample(self, index: int, rng=None) -> dict:
        t, i = self.items[index]
        return track_clip(self.tracks[t], slice(i, i + 1))


class PersonClips(torch.utils.data.Dataset):
    """Clips of ``frames`` photos of one person (one folder per person): like a video clip, the
    same shape and reflectance under another light, pose and age, for the reflectance swap."""

    def __init__(self, tracks: list[VideoTrack], frames: int = 4):
        self.tracks = [t for t in tracks if len(t) >= 2]
        self.frames = frames
        if not self.tracks:
            raise ValueError("no person folder with two or more photos with a face to train on")

    def __len__(self) -> int:
        return len(self.tracks)

    def __getitem__(self, index: int) -> dict:
        return self.sample(index, np.random.default_rng(index))

    def sample(self, index: int, rng: np.random.Generator) -> dict:
        track = self.tracks[index]
        return track_clip(track, rng.choice(len(track), self.frames, replace=len(track) < self.frames))
