"""Real training data: video clips (decode, detect, crop, cache, segments) and photo folders."""

import shutil

import numpy as np
import pytest
import torch

from engine.training.data import video as video_data
from engine.training.data.images import ImageStills, prepare_folder
from engine.training.data.mixture import DataConfig, TrainingData, expand_videos
from engine.training.data.video import (
    VideoClips,
    VideoConfig,
    VideoTrack,
    _is_cut,
    load_videos,
    prepare_video,
)
from tests.conftest import SAMPLE, SHARED

VIDEO = SHARED / "data" / "faces" / "video_short.mp4"
needs_video = pytest.mark.skipif(not VIDEO.exists(), reason="needs ../shared/data/faces/video_short.mp4")


def small_config(tmp_path, **kw) -> VideoConfig:
    return VideoConfig(image_size=64, cache_dir=str(tmp_path / "cache"), **kw)


def fake_track(segments: list[int]) -> VideoTrack:
    n = len(segments)
    crops = np.arange(n, dtype=np.uint8)[:, None, None, None] * np.ones((1, 8, 8, 3), np.uint8)
    return VideoTrack("fake", crops, np.zeros((n, 68, 2), np.float32), np.array(segments, np.int32))


def test_corrupt_and_missing_videos_are_skipped_with_a_warning(tmp_path):
    corrupt = tmp_path / "broken.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 20)
    with pytest.warns(UserWarning) as record:
        tracks = load_videos([corrupt, tmp_path / "missing.mp4"], small_config(tmp_path), detector=object())
    assert tracks == []
    messages = " ".join(str(w.message) for w in record)
    assert "broken.mp4" in messages and "missing.mp4" in messages


def test_clips_never_cross_a_segment():
    track = fake_track([0] * 10 + [1] * 3 + [2] * 1)
    clips = VideoClips([track], frames=3, max_gap=2)
    rng = np.random.default_rng(0)
    for index in range(len(clips)):
        for _ in range(5):
            frames = clips.sample(index, rng)["image"][:, 0, 0, 0].long()
            segs = torch.tensor(track.segment)[frames]
            assert (segs == segs[0]).all()
            assert (frames[1:] >= frames[:-1]).all()


def test_a_landmark_jump_is_a_cut():
    face = np.random.default_rng(0).uniform(40, 80, (68, 2))
    assert not _is_cut(face, face + 1.0, 0.2)
    assert _is_cut(face, face + 30.0, 0.2)


def test_expand_videos_takes_files_folders_and_globs(tmp_path):
    for name in ("a.mp4", "b.MOV", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.mkv").write_bytes(b"")
    assert [p.name for p in expand_videos([str(tmp_path)])] == ["a.mp4", "b.MOV", "c.mkv"]
    assert [p.name for p in expand_videos([str(tmp_path / "*.mp4")])] == ["a.mp4"]


@needs_video
def test_video_is_prepared_once_and_read_from_the_cache(tmp_path, monkeypatch):
    config = small_config(tmp_path, max_frames=6, frame_step=5)
    track = prepare_video(VIDEO, config)
    assert track.crops.shape == (6, 64, 64, 3) and track.landmarks.shape == (6, 68, 2)
    assert (track.landmarks > 0).all() and (track.landmarks < 64).all()
    assert len(list((tmp_path / "cache" / "clips").glob("*.npz"))) == 1

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again")

    monkeypatch.setattr(video_data, "iter_frames", no_decoding)
    again = prepare_video(VIDEO, config)
    assert np.array_equal(again.crops, track.crops)


def test_photo_folder_gives_stills_and_skips_bad_files(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(SAMPLE, folder / "face.png")
    (folder / "broken.jpg").write_bytes(b"not an image")
    with pytest.warns(UserWarning, match="broken.jpg"):
        track = prepare_folder(folder, small_config(tmp_path))
    stills = ImageStills([track])
    assert len(stills) == 1
    item = stills[0]
    assert item["image"].shape == (1, 3, 64, 64) and item["landmarks"].shape == (1, 68, 2)


def test_training_data_mixes_sources_deterministically(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    shutil.copy(SAMPLE, folder / "face.png")
    config = DataConfig(
        image_folders=[str(folder)],
        clips_per_batch=4,
        frames_per_clip=2,
        synthetic_clips=3,
        synthetic={"image_size": 64},
        cache_dir=str(tmp_path / "cache"),
    )
    data = TrainingData(config, 64, 16)
    a, b = data.batch(5), data.batch(5)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert a["gt_has"].any() or not data.batch(6)["gt_has"].all()
    synthetic_only = data.batch(7, synthetic_only=True)
    assert synthetic_only["gt_has"].all()


def test_person_clips_pick_several_photos_of_one_person_and_folders_expand(tmp_path):
    from engine.training.data.images import PersonClips
    from engine.training.data.mixture import expand_folders
    from engine.training.data.video import VideoTrack

    def track(name, n):
        crops = np.full((n, 8, 8, 3), len(name), np.uint8)
        return VideoTrack(name, crops, np.zeros((n, 68, 2), np.float32), np.arange(n, dtype=np.int32))

    clips = PersonClips([track("ann", 3), track("bob", 1), track("carla", 12)], frames=4)
    assert len(clips) == 2  # one photo of a person is no clip
    clip = clips.sample(1, np.random.default_rng(0))
    assert clip["image"].shape == (4, 3, 8, 8) and clip["source"] == "carla"
    assert len(set(clip["image"][:, 0, 0, 0].tolist())) == 1  # all photos of one person
    for name in ("Ann_A", "Bob_B", "Zoe_Z"):
        (tmp_path / name).mkdir()
    assert [p.name for p in expand_folders([str(tmp_path / "[A-R]*")])] == ["Ann_A", "Bob_B"]


def test_drawn_marks_are_painted_out_and_skin_is_left_alone():
    """LFW copies carry a drawn green box and dark-green crosses at the landmarks: erase_marks
    inpaints them from the photo; skin, lips and shadows are not marks."""
    import cv2

    from engine.training.data.images import drawn_marks, erase_drawn_marks

    rng = np.random.default_rng(0)
    image = np.zeros((120, 120, 3), np.uint8)
    image[:] = (196, 150, 120)  # skin
    image[80:90, 40:80] = (150, 60, 70)  # lips
    image[30:40, 20:50] = (70, 50, 40)  # a dark brow
    image = np.clip(image + rng.normal(0, 3, image.shape), 0, 255).astype(np.uint8)
    clean = image.copy()
    cv2.rectangle(image, (10, 10), (110, 110), (0, 128, 0), 1)
    for x, y in [(30, 50), (60, 60), (90, 50), (60, 85)]:
        cv2.drawMarker(image, (x, y), (55, 70, 15), cv2.MARKER_CROSS, 3)
    assert not drawn_marks(clean).any()
    marks = drawn_marks(image)
    assert marks[10, 10:111].all() and marks[50, 30] and marks[85, 60]
    erased = erase_drawn_marks(image)
    assert np.abs(erased.astype(int) - clean.astype(int)).max() < 40
    assert not drawn_marks(erased).any()


def test_person_fraction_sets_how_often_a_real_clip_is_a_persons_photos():
    from engine.training.data.images import PersonClips
    from engine.training.data.mixture import TrainingData
    from engine.training.data.video import VideoTrack

    people = PersonClips(
        [VideoTrack("ann", np.zeros((3, 8, 8, 3), np.uint8), np.zeros((3, 68, 2), np.float32), np.arange(3))],
        frames=2,
    )
    videos = object()  # any other real source
    data = object.__new__(TrainingData)
    data.real = [videos, people]

    def share(fraction, draws=4000):
        data.config = DataConfig(person_fraction=fraction)
        rng = np.random.default_rng(0)
        return np.mean([data._real_source(rng) is people for _ in range(draws)])

    assert abs(share(0.8) - 0.8) < 0.03
    assert abs(share(None) - 0.5) < 0.03  # unset: every real source alike, as before
    assert share(0.0) == 0.0 and share(1.0) == 1.0
    data.real = [people]
    assert share(0.0) == 1.0  # no other source: the people's photos are all there is
