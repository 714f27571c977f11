"""FrameRecorder keeps each video frame's final reconstruction, whatever the order of the calls."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from engine.reconstruct.sequence import FrameRecorder
from tests.conftest import make_video
from tests.robustness.conftest import cheap_fit, cheap_side_by_side


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """A short clip through reconstruct_video with the recorder's ``on_frame``: the recorder, the
    reconstructions it was handed (index -> Reconstruction) and frames.jsonl."""
    import engine.reconstruct.video as video
    from engine.reconstruct.reconstructor import Reconstructor

    reconstructor = Reconstructor(method="fit")
    reconstructor._fit = cheap_fit(reconstructor, landmark_fit=True)
    folder = tmp_path_factory.mktemp("sequence")
    clip = make_video(folder / "clip.mp4", frames=5)
    recorder, handed, order = FrameRecorder(), {}, []

    def on_frame(index, recon):
        order.append(("frame", index))
        handed[index] = recon
        recorder.record(index, recon)

    side_by_side, video._side_by_side = video._side_by_side, cheap_side_by_side
    try:
        video.reconstruct_video(
            reconstructor,
            clip,
            folder / "out",
            progress=lambda done, total: order.append(("progress", done - 1)),
            stop=lambda: False,
            on_frame=on_frame,
        )
    finally:
        video._side_by_side = side_by_side
    lines = [json.loads(line) for line in (folder / "out" / "frames.jsonl").read_text().splitlines()]
    return recorder, handed, order, lines


def test_each_frame_is_recorded_with_its_final_parameters(recorded):
    recorder, _, order, lines = recorded
    assert sorted(recorder.frames) == [line["frame"] for line in lines if line["face"]] == [0, 1, 2, 3, 4]
    assert order == [(kind, i) for i in range(5) for kind in ("frame", "progress")]  # before its progress
    for line in lines:  # what frames.jsonl says of each frame: after the track's consensus and smoothing
        params = recorder.frames[line["frame"]].full_params()
        assert np.allclose(params.identity[0].numpy(), line["identity"], atol=1e-5)
        assert np.allclose(
            params.rotation[0].numpy(), line["viewpoint"]["rotation_pitch_yaw_roll_rad"], atol=1e-5
        )


def test_recording_does_not_depend_on_the_order_of_calls(recorded):
    recorder, handed, _, _ = recorded
    backwards = FrameRecorder()
    for index in sorted(handed, reverse=True):
        backwards.record(index, handed[index])
    backwards.record(7, None)  # a frame without a face stores nothing
    assert sorted(backwards.frames) == sorted(recorder.frames)
    for index, frame in recorder.frames.items():
        other = backwards.frames[index]
        assert other.index == index and np.array_equal(other.crop, frame.crop)
        assert np.array_equal(other.landmarks, frame.landmarks)
        for name, value in frame.params.fields().items():
            assert torch.equal(value, other.params.fields()[name])


def test_the_recorder_keeps_at_most_max_frames(recorded):
    _, handed, _, _ = recorded
    small = FrameRecorder(max_frames=2)
    kept = [small.record(index, handed[index]) for index in sorted(handed)]
    assert [frame is not None for frame in kept] == [True, True, False, False, False]
    assert sorted(small.frames) == [0, 1]
