"""Hostile and unusual videos through engine.io.video, engine.reconstruct.video.reconstruct_video and
`cest reconstruct VIDEO`: corrupt, cut off, audio only, a face that leaves and comes back,
variable frame rate, a phone video with rotation metadata."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from engine.errors import VideoReadError
from engine.io.video import iter_frames, probe
from engine.reconstruct.video import reconstruct_video
from tests.robustness.conftest import error_lines, eye_geometry, read_jsonl


@pytest.fixture(scope="module")
def face(sample) -> np.ndarray:
    """The sample's face region, 240 x 264 (even sides, not square): a small, quick frame."""
    return np.asarray(Image.fromarray(sample).crop((110, 10, 340, 262)).resize((240, 264)))


def write_video(
    path: Path,
    frames: list[np.ndarray],
    fps: int = 10,
    pts_ms: list[int] | None = None,
    rotation: int | None = None,
    movflags: str | None = None,
    gop: int = 4,
) -> Path:
    """H.264 MP4 with PyAV: ``pts_ms`` for irregular timestamps, ``rotation`` for a display matrix
    (degrees counter-clockwise, as VideoFrame.rotation reads it), ``movflags`` for faststart/fragments."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", options={"movflags": movflags} if movflags else {}) as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        stream.options = {"g": str(gop), "preset": "ultrafast", "crf": "18"}
        if pts_ms is not None:
            stream.codec_context.time_base = Fraction(1, 1000)
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            if pts_ms is not None:
                frame.pts, frame.time_base = pts_ms[i], Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_audio(path: Path, codec: str = "aac", seconds: float = 0.5) -> Path:
    rate = 44100 if codec == "aac" else 16000
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=rate)
        stream.layout = "mono"
        fmt = "fltp" if codec == "aac" else "s16"
        n = int(rate * seconds)
        t = np.arange(n) / rate
        tone = np.sin(2 * np.pi * 440 * t).astype(np.float32)[None]
        samples = tone if fmt == "fltp" else (tone * 2000).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(samples, format=fmt, layout="mono")
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def moving(face: np.ndarray, n: int) -> list[np.ndarray]:
    return [np.roll(face, 2 * i, axis=1) for i in range(n)]


# ---------------------------------------------------------------------------------- broken files


def test_random_bytes_named_mp4(tmp_path):
    path = tmp_path / "noise.mp4"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    with pytest.raises(VideoReadError, match="not a readable video"):
        probe(path)
    with pytest.raises(VideoReadError) as info:
        list(iter_frames(path))
    assert str(info.value).startswith(str(path)) and "\n" not in str(info.value)


def test_empty_and_missing_files(tmp_path):
    (tmp_path / "empty.mp4").write_bytes(b"")
    cases = [(tmp_path / "empty.mp4", "not a readable video"), (tmp_path / "none.mp4", "no such file")]
    for path, message in cases:
        with pytest.raises(VideoReadError, match=message):
            list(iter_frames(path))


@pytest.mark.parametrize("movflags", ["faststart", "frag_keyframe+empty_moov"])
def test_cut_off_mp4_keeps_the_frames_before_the_cut(tmp_path, face, movflags):
    """A recording cut in the middle (index at the front, as faststart and fragmented MP4 have it):
    every frame whose data lies before the cut comes out, and the damage is reported."""
    path = write_video(tmp_path / "whole.mp4", moving(face, 16), movflags=movflags)
    data = path.read_bytes()
    cut = len(data) // 2
    with av.open(str(path)) as container:  # frames whose packets all lie before the cut
        packets = [p for p in container.demux(video=0) if p.size]
    complete = sum(1 for p in packets if p.pos is not None and p.pos + p.size <= cut)
    (tmp_path / "cut.mp4").write_bytes(data[:cut])
    problems = []
    frames = list(iter_frames(tmp_path / "cut.mp4", problems))
    assert complete - 1 <= len(frames) < 16, (len(frames), complete)  # at most the frame at the cut is lost
    assert [i for i, _, _ in frames] == list(range(len(frames)))
    assert np.abs(frames[0][2].astype(int) - face).mean() < 8  # the first frame is intact
    assert problems and "frames decoded are kept" in problems[0]  # and the damage is reported


def test_cut_off_mp4_with_its_index_at_the_end_is_a_clear_error(tmp_path, face):
    """The plain MP4 layout keeps its index (moov) at the end: cut off, nothing is decodable — and
    the message says the file is not readable rather than raising something obscure."""
    path = write_video(tmp_path / "whole.mp4", moving(face, 8))
    data = path.read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])
    with pytest.raises(VideoReadError, match="not a readable video"):
        list(iter_frames(tmp_path / "cut.mp4"))


def test_corrupted_bytes_in_the_middle(tmp_path, face):
    """Garbage over a stretch of the data: no exception, the frames that decode come out."""
    path = write_video(tmp_path / "v.mp4", moving(face, 12), movflags="faststart")
    data = bytearray(path.read_bytes())
    start = len(data) // 2
    data[start : start + 3000] = np.random.default_rng(2).integers(0, 256, 3000, dtype=np.uint8).tobytes()
    (tmp_path / "bad.mp4").write_bytes(bytes(data))
    frames = list(iter_frames(tmp_path / "bad.mp4"))
    assert len(frames) >= 4 and all(f.shape == face.shape for _, _, f in frames)


@pytest.mark.parametrize(
    "name, codec", [("voice.m4a", "aac"), ("voice.mp4", "aac"), ("voice.mov", "pcm_s16le")]
)
def test_audio_only_files(tmp_path, name, codec):
    path = write_audio(tmp_path / name, codec)
    if name.endswith(".m4a"):  # not a video suffix: the CLI sees an audio file (tested below)
        with pytest.raises(VideoReadError, match="no video stream"):
            probe(path)
        return
    with pytest.raises(VideoReadError, match="no video stream"):
        list(iter_frames(path))


# ------------------------------------------------------------------------------ content and timing


def test_face_leaves_and_comes_back(tmp_path, face, fast_reconstructor, quick_video):
    """Face, face, face, blank, blank, face (moved 30 px and tilted), face: the blank frames say face
    false, the track ends there and starts afresh: the returning face's crop and identity are its
    own, not smoothed towards the face before it left."""
    import cv2

    blank = np.full_like(face, 90)
    tilt = cv2.getRotationMatrix2D((face.shape[1] / 2, face.shape[0] / 2), 12, 1.0)
    back = np.roll(cv2.warpAffine(face, tilt, face.shape[1::-1], borderMode=cv2.BORDER_REFLECT), 30, axis=1)
    frames = [face, face, face, blank, blank, back, back]
    path = write_video(tmp_path / "leave.mp4", frames)
    stats = reconstruct_video(fast_reconstructor, path, tmp_path / "out", preview=True)
    lines = read_jsonl(tmp_path / "out" / "frames.jsonl")
    assert [line["face"] for line in lines] == [True, True, True, False, False, True, True]
    assert stats["frames"] == 7 and stats["faces"] == 5
    # the returning face: the crop box is the one from its own landmarks (a fresh track)
    from engine.crop import crop_params_from_landmarks

    fresh = crop_params_from_landmarks(np.array(lines[5]["landmarks_68_xy"]))
    assert np.allclose(lines[5]["crop_centre_side_px"], [fresh.cx, fresh.cy, fresh.side], atol=0.02)
    assert lines[5]["crop_centre_side_px"][0] - lines[2]["crop_centre_side_px"][0] > 20
    # ... and identity restarts from that frame alone (no running mean with the frames before)
    decoded = [f for _, _, f in iter_frames(path)]
    own = fast_reconstructor.reconstruct_face(decoded[5], fast_reconstructor.detector.detect(decoded[5])[0])
    assert np.allclose(lines[5]["identity"], own.params.identity[0].numpy(), atol=1e-3)
    out_frames = list(iter_frames(tmp_path / "out" / "reconstruction.mp4"))
    assert len(out_frames) == 7


def test_variable_frame_rate(tmp_path, face, fast_reconstructor, quick_video):
    """Irregular timestamps (a phone dropping frames): every frame comes out, with its own time."""
    pts = [0, 33, 66, 200, 233, 700]
    path = write_video(tmp_path / "vfr.mp4", moving(face, 6), fps=30, pts_ms=pts)
    times = [t for _, t, _ in iter_frames(path)]
    assert np.allclose(times, np.array(pts) / 1000, atol=1e-3)
    stats = reconstruct_video(fast_reconstructor, path, tmp_path / "out", preview=True)
    lines = read_jsonl(tmp_path / "out" / "frames.jsonl")
    assert stats["frames"] == stats["faces"] == 6
    assert np.allclose([line["time_s"] for line in lines], np.array(pts) / 1000, atol=1e-3)
    assert len(list(iter_frames(tmp_path / "out" / "reconstruction.mp4"))) == 6


@pytest.mark.parametrize("rotation", [-90, 90, 180])
def test_rotated_phone_video_frames_come_out_upright(tmp_path, face, rotation):
    """Pixels stored turned, a display matrix saying how to show them (what phones write)."""
    stored = np.rot90(face, -round(rotation / 90))  # undoing `rotation` counter-clockwise gives face
    path = write_video(tmp_path / f"rot{rotation}.mp4", [stored] * 2, rotation=rotation)
    frames = list(iter_frames(path))
    assert frames[0][2].shape == face.shape
    assert np.abs(frames[0][2].astype(int) - face).mean() < 8


def test_rotated_phone_video_reconstructs_an_upright_face(tmp_path, face, landmark_fit, quick_video):
    """The real landmark fit on the frames: eyes level and above the mouth, and no roll."""
    stored = np.rot90(face, 1)  # held sideways: shown after a quarter turn clockwise
    path = write_video(tmp_path / "phone.mp4", [stored] * 2, rotation=-90)
    reconstruct_video(landmark_fit, path, tmp_path / "out")
    for line in read_jsonl(tmp_path / "out" / "frames.jsonl"):
        assert line["face"]
        angle, eyes_above_mouth = eye_geometry(np.array(line["landmarks_68_xy"]))
        assert abs(angle) < 10 and eyes_above_mouth > 10
        assert abs(line["viewpoint"]["rotation_pitch_yaw_roll_rad"][2]) < 0.2


# --------------------------------------------------------------------------------- through the CLI


def test_cli_video_batch_goes_on(tmp_path, face, cli, capsys):
    """Corrupt, audio-only and good videos (one at a non-ASCII path) in one `cest reconstruct`."""
    noise = tmp_path / "noise.mp4"
    noise.write_bytes(np.random.default_rng(0).integers(0, 256, 20_000, dtype=np.uint8).tobytes())
    audio_mp4 = write_audio(tmp_path / "talk.mp4")
    audio_m4a = write_audio(tmp_path / "talk2.m4a")
    good = write_video(tmp_path / "vidéo Ü 1" / "clip ü.mp4", moving(face, 3))
    out = tmp_path / "out"
    status = cli(["reconstruct", str(noise), str(audio_mp4), str(audio_m4a), str(good), "-o", str(out)])
    errors = error_lines(capsys.readouterr().err)
    assert status == 1 and len(errors) == 3, errors
    assert errors[0].startswith(f"error: {noise}: not a readable video")
    assert errors[1].startswith(f"error: {audio_mp4}: has no video stream")
    assert errors[2].startswith(f"error: {audio_m4a}:") and "audio" in errors[2]
    assert len(read_jsonl(out / "clip ü" / "frames.jsonl")) == 3
    summary = json.loads((out / "clip ü" / "summary.json").read_text())
    assert summary["frames"] == summary["faces"] == 3
    assert not (out / "noise").exists() and not (out / "talk").exists()  # no empty folders left


def test_undecodable_video_leaves_no_outputs_and_keeps_old_ones(
    tmp_path, face, fast_reconstructor, quick_video
):
    """A file that opens but has no decodable frame: a clear error, and a previous run's outputs in
    the folder are left as they were (not truncated to nothing)."""
    good = write_video(tmp_path / "good.mp4", moving(face, 2), movflags="faststart")  # index first
    out = tmp_path / "out"
    reconstruct_video(fast_reconstructor, good, out)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    data = good.read_bytes()
    with av.open(str(good)) as container:
        first = min(p.pos for p in container.demux(video=0) if p.size)
    broken = bytearray(data)
    broken[first:] = bytes(len(data) - first)  # the index intact, every frame's data zeroed
    (tmp_path / "zeroed.mp4").write_bytes(bytes(broken))
    with pytest.raises(VideoReadError, match="cannot decode"):
        reconstruct_video(fast_reconstructor, tmp_path / "zeroed.mp4", out)
    after = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert after == before
