"""Animation export: animation.glb read back by an independent glTF reader (pygltflib), the Live Link
Face CSV layout, the no-face policy and the smoothing of the curves."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

from engine.crop import OneEuroFilter
from engine.reconstruct import motion as mo
from engine.reconstruct.animation import write_animation
from engine.reconstruct.arkit import ARKIT_NAMES, HEADER

FPS = 25.0
SIZE = (640, 480)


def _record(frame: int, face: bool, expression=None, yaw: float = 0.0, track: int = 0) -> dict:
    record = {"frame": frame, "face": face, "time_s": frame / FPS}
    if face:
        record.update(
            track=track,
            expression=list(expression),
            viewpoint={
                "rotation_pitch_yaw_roll_rad": [0.05, yaw, 0.0],
                "translation_ndc": [0.01, -0.02],
                "scale_ndc_per_cm": 0.09,
            },
            crop_centre_side_px=[320.0 + frame, 240.0, 200.0],
        )
    return record


def _records(face_model, faces: list[bool], seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    n = face_model.n_expression
    return [_record(i, seen, rng.uniform(0, 0.8, n), yaw=0.2 * np.sin(i / 5)) for i, seen in enumerate(faces)]


def _write(face_model, tmp_path, records):
    identity = torch.zeros(1, face_model.n_identity)
    albedo = torch.full((1, 3, 32, 32), 0.6)
    return write_animation(tmp_path, face_model, identity, albedo, FPS, SIZE, records=records)


def _read_glb(path):
    pygltflib = pytest.importorskip("pygltflib")
    return pygltflib.GLTF2().load(str(path))


def _array(gltf, index: int) -> np.ndarray:
    accessor = gltf.accessors[index]
    view = gltf.bufferViews[accessor.bufferView]
    width = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4}[accessor.type]
    dtype = {5126: np.float32, 5125: np.uint32}[accessor.componentType]
    data = np.frombuffer(
        gltf.binary_blob(),
        dtype,
        count=accessor.count * width,
        offset=view.byteOffset + (accessor.byteOffset or 0),
    )
    return data.reshape(accessor.count, width)


def _channels(gltf) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    animation = gltf.animations[0]
    out = {}
    for channel in animation.channels:
        sampler = animation.samplers[channel.sampler]
        out[channel.target.path] = (_array(gltf, sampler.input)[:, 0], _array(gltf, sampler.output))
    return out


def _csv_rows(path) -> list[list[str]]:
    with open(path) as file:
        return list(csv.reader(file))


def test_glb_read_back_by_pygltflib(face_model, tmp_path):
    records = _records(face_model, [True] * 20)
    glb, _ = _write(face_model, tmp_path, records)
    gltf = _read_glb(glb)
    primitive = gltf.meshes[0].primitives[0]
    assert len(primitive.targets) == face_model.n_expression
    assert gltf.meshes[0].extras["targetNames"] == face_model.expression_names
    assert _array(gltf, primitive.attributes.POSITION).shape == (face_model.n_vertices, 3)
    assert _array(gltf, primitive.indices).max() < face_model.n_vertices
    assert gltf.images[0].mimeType == "image/png" and gltf.materials[0].pbrMetallicRoughness.baseColorTexture
    channels = _channels(gltf)
    assert set(channels) == {"weights", "rotation", "translation"}
    times, weights = channels["weights"]
    assert len(times) == 20  # one keyframe per frame with a face
    np.testing.assert_allclose(times, np.arange(20) / FPS, atol=1e-6)
    weights = weights.reshape(len(times), -1)
    assert weights.shape[1] == face_model.n_expression
    assert weights.min() >= 0 and weights.max() <= 1
    rotations = channels["rotation"][1]
    np.testing.assert_allclose(np.linalg.norm(rotations, axis=1), 1, atol=1e-5)
    assert channels["translation"][1].shape == (20, 3)


def test_morph_targets_are_the_blendshapes(face_model, tmp_path):
    glb, _ = _write(face_model, tmp_path, _records(face_model, [True] * 3))
    gltf = _read_glb(glb)
    jaw = face_model.expression_names.index("jawOpen")
    target = _array(gltf, gltf.meshes[0].primitives[0].targets[jaw]["POSITION"])
    np.testing.assert_allclose(target, face_model.expression_basis[jaw].numpy() / 100, atol=1e-7)


def test_csv_has_live_link_face_layout(face_model, tmp_path):
    records = _records(face_model, [True] * 8 + [False] * 2)
    _, path = _write(face_model, tmp_path, records)
    rows = _csv_rows(path)
    assert tuple(rows[0]) == HEADER
    assert rows[0][:3] == ["Timecode", "BlendShapeCount", "EyeBlinkLeft"] and rows[0][-4:] == [
        "TongueOut",
        "HeadYaw",
        "HeadPitch",
        "HeadRoll",
    ]
    assert len(ARKIT_NAMES) == 52 and len(rows) == 1 + len(records)  # one row per frame, faces or not
    assert rows[1][0] == "00:00:00:00.000" and rows[2][0] == "00:00:00:01.000" and rows[1][1] == "55"
    values = np.array([[float(v) for v in row[2:]] for row in rows[1:]])
    assert np.all(values[:, ARKIT_NAMES.index("TongueOut")] == 0)
    assert values[:, :52].min() >= 0 and values[:, :52].max() <= 1
    # the single BrowInnerUp is the mean of our left and right ones (first frame: unfiltered)
    names = face_model.expression_names
    ours = records[0]["expression"]
    mean = (ours[names.index("browInnerUp_L")] + ours[names.index("browInnerUp_R")]) / 2
    assert values[0, ARKIT_NAMES.index("BrowInnerUp")] == pytest.approx(mean, abs=1e-6)
    assert values[0, ARKIT_NAMES.index("JawOpen")] == pytest.approx(ours[names.index("jawOpen")], abs=1e-6)


def test_no_face_frames_hold_then_fade_to_neutral(face_model, tmp_path):
    faces = [True] * 10 + [False] * 75 + [True] * 5  # a 3-second gap
    records = _records(face_model, faces)
    glb, path = _write(face_model, tmp_path, records)
    values = np.array([[float(v) for v in row[2:]] for row in _csv_rows(path)[1:]])
    blend = values[:, :52]
    last = blend[9]
    since = np.arange(1, 76) / FPS  # seconds since the last face, for the gap's frames
    gap = blend[10:85]
    held = since <= mo.HOLD_S
    np.testing.assert_allclose(gap[held], np.broadcast_to(last, gap[held].shape), atol=1e-6)
    gone = since >= mo.HOLD_S + mo.FADE_S
    assert np.all(gap[gone] == 0) and np.all(np.abs(values[10:85][gone][:, 52:]) < 1e-6)  # neutral, frontal
    fading = ~held & ~gone
    fraction = (since[fading] - mo.HOLD_S) / mo.FADE_S
    np.testing.assert_allclose(gap[fading], np.outer(1 - fraction, last), atol=1e-6)
    step = np.abs(np.diff(blend[9:85], axis=0)).max()  # no jump: the fade's own slope at most
    assert step <= np.abs(last).max() / (mo.FADE_S * FPS) + 1e-5
    # the glTF holds the same curves: a keyframe per face frame, a few more carrying the policy
    gltf = _read_glb(glb)
    times, weights = _channels(gltf)["weights"]
    weights = weights.reshape(len(times), -1)
    face_times = np.flatnonzero(faces) / FPS
    assert np.abs(face_times[:, None] - times[None]).min(axis=1).max() < 1e-5
    assert sum(faces) < len(times) <= sum(faces) + 4
    jaw = face_model.expression_names.index("jawOpen")
    gap_times = np.arange(10, 85) / FPS
    np.testing.assert_allclose(
        np.interp(gap_times, times, weights[:, jaw]), blend[10:85, ARKIT_NAMES.index("JawOpen")], atol=1e-5
    )


def test_frames_before_the_first_face_are_neutral(face_model, tmp_path):
    _, path = _write(face_model, tmp_path, _records(face_model, [False] * 4 + [True] * 4))
    values = np.array([[float(v) for v in row[2:]] for row in _csv_rows(path)[1:]])
    assert np.all(values[:4, :52] == 0) and values[4, :52].max() > 0


def test_one_euro_smooths_a_still_value_and_follows_a_fast_one():
    rng = np.random.default_rng(1)
    times = np.arange(200) / FPS
    still = 0.3 + rng.normal(0, 0.02, 200)
    filt = OneEuroFilter(*mo.EXPRESSION_FILTER)
    smoothed = np.array([filt(np.array([v]), t)[0] for v, t in zip(still, times)])
    assert np.std(np.diff(smoothed[20:])) < 0.3 * np.std(np.diff(still[20:]))
    ramp = np.clip((times - 2) * 5, 0, 1)  # 0 -> 1 in 0.2 s
    filt.reset()
    followed = np.array([filt(np.array([v]), t)[0] for v, t in zip(ramp, times)])
    assert followed[np.searchsorted(times, 2.2 + 0.2)] > 0.9  # within 0.2 s of the end of the ramp


def test_video_animation_end_to_end(tmp_path, sample_image, face_model):
    from engine.cli import main
    from engine.io.video import VideoWriter

    clip = tmp_path / "clip.mp4"
    with VideoWriter(clip, 25) as writer:
        for i in range(5):
            writer.write(np.roll(sample_image, 4 * i, axis=1))
        writer.write(np.zeros_like(sample_image))  # a frame without a face
    assert (
        main(["reconstruct", str(clip), "-o", str(tmp_path / "out"), "--method", "fit", "--animation"]) == 0
    )
    folder = tmp_path / "out" / "clip"
    lines = [json.loads(line) for line in (folder / "frames.jsonl").read_text().splitlines()]
    faces = sum(line["face"] for line in lines)
    assert len(_csv_rows(folder / "blendshapes.csv")) == 1 + len(lines)
    gltf = _read_glb(folder / "animation.glb")
    times = _channels(gltf)["weights"][0]
    assert faces == 5 and len(times) == faces + 1  # the no-face frame is the gap's one policy key
