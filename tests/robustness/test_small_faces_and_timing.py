"""Small faces are found (a face filling a panorama's height, the many small faces of a group photo),
and a video whose frame rate metadata is 0 still decodes every frame, with a warning."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.detect import MediaPipeDetector
from engine.detect.registry import _mediapipe_missing
from tests.conftest import SAMPLE
from tests.robustness.test_videos import write_video

needs_mediapipe = pytest.mark.skipif(_mediapipe_missing() is not None, reason="needs the MediaPipe models")


@pytest.fixture(scope="module")
def face() -> Image.Image:
    return Image.open(SAMPLE).convert("RGB").crop((110, 10, 340, 262))


@pytest.fixture(scope="module")
def detector():
    return MediaPipeDetector()


@needs_mediapipe
def test_a_face_filling_a_panoramas_height(face, detector):
    """A 200 px face in a 4000 x 200 panorama (1/20 of the long side)."""
    pano = Image.new("RGB", (4000, 200), (120, 120, 120))
    pano.paste(face.resize((182, 200)), (2500, 0))
    faces = detector.detect(np.asarray(pano))
    assert len(faces) == 1 and 2450 < faces[0].box[0] < faces[0].box[2] < 2750


@needs_mediapipe
def test_small_faces_of_a_group_photo(face, detector):
    """One large face and 24 faces of 1/20 of the long side: the first level finds the large one;
    the thorough search (what --all-faces asks for) finds most of the small ones too."""
    group = Image.new("RGB", (2000, 1000), (128, 128, 128))
    group.paste(face.resize((365, 400)), (50, 50))
    for i in range(8):
        for j in range(3):
            group.paste(face.resize((100, 110)), (600 + 170 * i, 120 + 300 * j))
    image = np.asarray(group)
    assert len(detector.detect(image)) >= 1
    faces = detector.detect(image, thorough=True)
    assert len(faces) >= 15
    boxes = np.stack([f.box for f in faces])
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    assert len(np.unique(np.round(centres / 50), axis=0)) == len(faces)  # no face twice


def zero_timescale(path: Path) -> Path:
    """The mp4's media timescale set to 0 (a '0 fps' file)."""
    data = bytearray(path.read_bytes())
    at = data.find(b"mdhd") + 4 + 4 + 8  # box type, version+flags, creation and modification times
    data[at : at + 4] = bytes(4)
    broken = path.with_name("zero_fps.mp4")
    broken.write_bytes(bytes(data))
    return broken


def test_zero_fps_metadata_warns_and_decodes_every_frame(tmp_path, caplog):
    from engine.io.video import iter_frames, probe

    frames = [np.full((64, 64, 3), 4 * i, np.uint8) for i in range(30)]
    path = zero_timescale(write_video(tmp_path / "v.mp4", frames, fps=25))
    with caplog.at_level(logging.WARNING, logger="cest"):
        info = probe(path)
        decoded = list(iter_frames(path))
    assert "frame rate" in caplog.text and "unusable" in caplog.text
    assert 1 <= info.fps <= 1000
    assert len(decoded) == 30
    times = [t for _, t, _ in decoded]
    assert times == sorted(times) and times[-1] > 0
