"""The training data of one run: real clips, stills and synthetic clips, mixed into batches.

Batch ``step`` of rank ``r`` is a pure function of (seed, step, r): no sampler state to save, so
a resumed run sees exactly the batches it would have seen, and DDP ranks see different ones.
"""

from __future__ import annotations

import glob
import logging
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np
import torch

from engine.facemodel import FaceModel
from engine.io.formats import VIDEO_SUFFIXES
from engine.training.data.bank import SyntheticBank
from engine.training.data.cache import cache_root
from engine.training.data.clip import collate, flip_clip
from engine.training.data.synthetic import SyntheticConfig, SyntheticFaces

log = logging.getLogger(__name__)


@dataclass
class DataConfig:
    videos: list[str] = field(default_factory=list)  # files, folders or glob patterns
    image_folders: list[str] = field(default_factory=list)
    # folders (or glob patterns of folders) of photos, one person per folder: clips of several photos
    person_folders: list[str] = field(default_factory=list)
    clips_per_batch: int = 4
    frames_per_clip: int = 4
    max_gap: int = 4  # frames between the picked frames of a video clip: 1..max_gap
    synthetic_clips: int = 2000  # size of the synthetic training set (0 = none)
    synthetic_fraction: float = 0.5  # chance a clip is synthetic when real data exist
    # chance a real clip is one person's photos rather than a video clip (None: every real source
    # alike); photos of one person under different light are what the contrasts learn identity from
    person_fraction: float | None = None
    synthetic_bank: bool = True  # render the synthetic set once into the cache folder
    flip: bool = True  # mirror real clips at random
    forehead: float = 0.4  # face mask above the brows, in brow-to-chin units
    frame_step: int = 1
    max_frames: int = 0
    detector: str = "auto"
    # paint out drawn annotation marks (saturated green boxes and dots, as the shared LFW copies
    # carry) from photos before they are cropped, so neither the networks nor the loss see them
    erase_marks: bool = False
    cache_dir: str | None = None
    synthetic: dict = field(default_factory=dict)  # SyntheticConfig overrides

    @classmethod
    def from_dict(cls, values: dict) -> DataConfig:
        unknown = set(values) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown data config keys: {sorted(unknown)}")
        return cls(**values)

    def to_dict(self) -> dict:
        return asdict(self)


def expand_videos(patterns: list[str]) -> list[Path]:
    """Video files named directly, inside folders (recursively) or matched by glob patterns."""
    found = []
    for pattern in patterns:
        path = Path(pattern).expanduser()
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES)
        elif path.exists():
            found.append(path)
        else:
            matches = sorted(Path(p) for p in glob.glob(str(path), recursive=True))
            if not matches:
                log.warning("no videos match %s", pattern)
            found += matches
    return found


def expand_folders(patterns: list[str]) -> list[Path]:
    """Folders named directly or matched by glob patterns, sorted."""
    found: list[Path] = []
    for pattern in patterns:
        matches = sorted(Path(p) for p in glob.glob(str(Path(pattern).expanduser())) if Path(p).is_dir())
        if not matches:
            log.warning("no folders match %s", pattern)
        found += matches
    return found


def _person(folder: Path, video_config, detector, skipped: list[str]):
    from engine.training.data.images import prepare_folder
    from engine.training.data.video import VideoTrack

    try:
        return prepare_folder(folder, video_config, detector)
    except (OSError, ValueError) as err:  # a folder without usable photos: say so, go on
        skipped.append(f"{folder}: {err}")
        return VideoTrack(
            str(folder),
            np.zeros((0, 1, 1, 3), np.uint8),
            np.zeros((0, 68, 2), np.float32),
            np.zeros(0, np.int32),
        )


class TrainingData:
    """Real and synthetic clips of one run; ``batch(step, rank)`` gives a collated batch."""

    def __init__(
        self,
        config: DataConfig,
        image_size: int,
        texture_size: int,
        seed: int = 0,
        face_model: FaceModel | None = None,
        detector=None,
    ):
        self.config, self.seed = config, seed
        skipped: list[str] = []
        self.real = self._real_sources(config, image_size, detector, skipped)
        self.synthetic = None
        if config.synthetic_clips:
            synth = SyntheticConfig(
                **{
                    **config.synthetic,
                    "image_size": image_size,
                    "texture_size": texture_size,
                    "frames": config.frames_per_clip,
                }
            )
            if config.synthetic_bank:
                self.synthetic = SyntheticBank.load_or_build(
                    synth, config.synthetic_clips, seed, "train", cache_root(config.cache_dir), face_model
                )
            else:
                self.synthetic = SyntheticFaces(synth, config.synthetic_clips, seed, "train", face_model)
        if not self.real and self.synthetic is None:
            why = f" (skipped {'; '.join(skipped)})" if skipped else ""
            raise ValueError(f"no training data: give videos, image folders or synthetic clips{why}")
        self._memo: dict[int, dict] = {}

    @staticmethod
    def _real_sources(config: DataConfig, image_size: int, detector, skipped: list[str]) -> list:
        from engine.training.data.video import VideoConfig

        video_config = VideoConfig(
            image_size,
            config.frame_step,
            config.max_frames,
            detector=config.detector,
            cache_dir=config.cache_dir,
            erase_marks=config.erase_marks,
        )
        sources = []
        videos = expand_videos(config.videos)
        if videos:
            from engine.training.data.video import VideoClips, load_videos

            tracks = load_videos(videos, video_config, detector, skipped)
            if tracks:
                sources.append(VideoClips(tracks, config.frames_per_clip, config.max_gap))
        if config.image_folders:
            from engine.training.data.images import ImageStills, prepare_folder

            sources.append(
                ImageStills([prepare_folder(f, video_config, detector) for f in config.image_folders])
            )
        if config.person_folders:
            from engine.training.data.images import PersonClips, prepare_folder

            folders = expand_folders(config.person_folders)
            sources.append(
                PersonClips(
                    [_person(f, video_config, detector, skipped) for f in folders], config.frames_per_clip
                )
            )
        return sources

    @property
    def real_frames(self) -> int:
        return sum(len(t) for s in self.real for t in s.tracks)

    def batch(self, step: int, rank: int = 0, synthetic_only: bool = False) -> dict[str, torch.Tensor]:
        return self._batch(np.random.default_rng([self.seed, 0, step, rank]), synthetic_only)

    def sample_batch(self) -> dict[str, torch.Tensor]:
        """A fixed batch for the pictures of a run (the same at every step and after a resume)."""
        return self._batch(np.random.default_rng([self.seed, 1]), False)

    def _batch(self, rng: np.random.Generator, synthetic_only: bool) -> dict[str, torch.Tensor]:
        clips = [self._clip(rng, synthetic_only) for _ in range(self.config.clips_per_batch)]
        return collate(clips, self.config.forehead)

    def _clip(self, rng: np.random.Generator, synthetic_only: bool) -> dict:
        use_synth = self.synthetic is not None and (
            synthetic_only or not self.real or rng.random() < self.config.synthetic_fraction
        )
        if use_synth:
            return self._synthetic_clip(int(rng.integers(len(self.synthetic))))
        source = self._real_source(rng)
        clip = source.sample(int(rng.integers(len(source))), rng)
        return flip_clip(clip) if self.config.flip and rng.random() < 0.5 else clip

    def _real_source(self, rng: np.random.Generator):
        fraction = self.config.person_fraction
        people = [s for s in self.real if _is_people(s)]
        others = [s for s in self.real if not _is_people(s)]
        if fraction is None or not people or not others:
            return self.real[int(rng.integers(len(self.real)))]
        pool = people if rng.random() < fraction else others
        return pool[int(rng.integers(len(pool)))]

    def _synthetic_clip(self, index: int) -> dict:
        if isinstance(self.synthetic, SyntheticBank):
            return self.synthetic.sample(index)
        if index not in self._memo:  # rendering costs more than keeping ~0.3 MB per clip
            clip = self.synthetic[index]
            mask = (clip["mask"] * 255).round().byte()
            self._memo[index] = {
                "image": clip["image"],
                "mask": mask,
                "landmarks": clip["landmarks"],
                "params": clip["params"],
            }
        return self._memo[index]


def _is_people(source) -> bool:
    from engine.training.data.images import PersonClips

    return isinstance(source, PersonClips)
