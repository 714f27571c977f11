"""Re-runs never destroy a complete result, a face's files are all-or-nothing, --all-faces folders
never collide, a video knows when the person changes, and a video with no face says so."""

from __future__ import annotations

import errno
import json
import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import engine.io.mesh
from engine.detect import NoFaceError
from engine.reconstruct.video import reconstruct_video
from tests.robustness.conftest import error_lines, read_jsonl
from tests.robustness.test_images import two_faces
from tests.robustness.test_videos import moving, write_video


@pytest.fixture(scope="module")
def face(sample) -> np.ndarray:
    return np.asarray(Image.fromarray(sample).crop((110, 10, 340, 262)).resize((240, 264)))


def someone_else(face: np.ndarray) -> np.ndarray:
    """Another 'person': the face 28% narrower, on a blue background (a cut to another shot)."""
    img = Image.fromarray(face)
    narrow = img.resize((int(img.width * 0.72), img.height))
    canvas = Image.new("RGB", img.size, (40, 90, 160))
    canvas.paste(narrow, ((img.width - narrow.width) // 2, 0))
    return np.asarray(canvas)


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def hidden(folder: Path) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name.startswith(".")]


# ------------------------------------------------------------------------------ 3: video re-runs


def interrupt_at(frame: int):
    def progress(done, total):
        if done == frame:
            raise KeyboardInterrupt

    return progress


def test_interrupted_rerun_keeps_the_complete_result(tmp_path, face, fast_reconstructor, quick_video, caplog):
    video = write_video(tmp_path / "k.mp4", moving(face, 6))
    out = tmp_path / "out" / "K"
    reconstruct_video(fast_reconstructor, video, out)
    before = files_of(out)
    with caplog.at_level(logging.WARNING, logger="cest"), pytest.raises(KeyboardInterrupt):
        reconstruct_video(fast_reconstructor, video, out, progress=interrupt_at(3))
    assert files_of(out) == before  # the complete result, every byte
    assert len(read_jsonl(out / "frames.jsonl")) == 6
    partial = tmp_path / "out" / "K.partial"
    assert len(read_jsonl(partial / "frames.jsonl")) == 3
    assert str(partial) in caplog.text and "untouched" in caplog.text
    assert not hidden(tmp_path / "out")
    # a complete re-run replaces the result
    stats = reconstruct_video(fast_reconstructor, video, out)
    assert stats["folder"] == str(out) and len(read_jsonl(out / "frames.jsonl")) == 6


def test_interrupted_first_run_keeps_its_frames_in_place(tmp_path, face, fast_reconstructor, quick_video):
    video = write_video(tmp_path / "k.mp4", moving(face, 5))
    out = tmp_path / "out" / "K"
    stats = reconstruct_video(fast_reconstructor, video, out, stop=lambda: False, progress=interrupt_at(2))
    assert stats["interrupted"] and stats["folder"] == str(out)
    assert len(read_jsonl(out / "frames.jsonl")) == 2


def test_leftovers_of_a_killed_run_are_removed_by_the_next(tmp_path, face, fast_reconstructor, quick_video):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    video = write_video(tmp_path / "k.mp4", moving(face, 2))
    out = tmp_path / "out" / "K"
    stale = tmp_path / "out" / f".K.{dead.pid}-abc123.staging"
    (stale / "meshes").mkdir(parents=True)
    (stale / ".frames.jsonl.x1y2.tmp").write_bytes(b"x" * 1000)
    out.mkdir()
    (out / ".reconstruction.mp4.q9w8.mp4").write_bytes(b"y" * 1000)  # what the old code left inside
    reconstruct_video(fast_reconstructor, video, out)
    assert not stale.exists() and not hidden(tmp_path / "out")
    assert not hidden(out)


def test_video_with_no_face_is_an_error(tmp_path, face, cli, capsys):
    blank = [np.full_like(face, v) for v in (60, 90, 120)]
    video = write_video(tmp_path / "empty.mp4", blank)
    status = cli(["reconstruct", str(video), "-o", str(tmp_path / "out")])
    errors = error_lines(capsys.readouterr().err)
    assert status == 1 and len(errors) == 1
    assert "no face found in any of its 3 frames" in errors[0] and "too small" in errors[0]
    assert not (tmp_path / "out" / "empty").exists()


# ------------------------------------------------------------------------------ 4: --all-faces


def test_all_faces_folders_never_collide_with_another_input(tmp_path, sample, cli, capsys):
    group, other = tmp_path / "group.jpg", tmp_path / "group_face2.png"
    Image.fromarray(two_faces(sample)).save(group, quality=95)
    Image.fromarray(sample).save(other)
    out = tmp_path / "out"
    assert (
        cli(["reconstruct", str(group), str(other), "--all-faces", "-o", str(out), "--formats", "obj"]) == 0
    )
    sources = {p.name: json.loads((p / "params.json").read_text())["source"] for p in out.iterdir()}
    assert sources == {"group": str(group), "group_face2_2": str(group), "group_face2": str(other)}


# ------------------------------------------------------------------------------ 5: person changes


def test_a_cut_to_another_person_restarts_the_track(tmp_path, face, fast_reconstructor, quick_video):
    b = someone_else(face)
    video = write_video(tmp_path / "cut.mp4", [face] * 4 + [b] * 4)
    stats = reconstruct_video(fast_reconstructor, video, tmp_path / "out")
    lines = read_jsonl(tmp_path / "out" / "frames.jsonl")
    assert [line["track"] for line in lines] == [0] * 4 + [1] * 4
    assert stats["tracks"] == 2
    from engine.io.video import iter_frames

    decoded = [f for _, _, f in iter_frames(video)][4]
    own = fast_reconstructor.reconstruct(decoded)  # B's first frame alone: nothing of A blended in
    assert np.allclose(lines[4]["identity"], own.params.identity[0].numpy(), atol=1e-3)


def test_another_shape_without_a_cut_restarts_the_track(
    tmp_path, face, landmark_fit, quick_video, monkeypatch
):
    """No cut is seen (the detector is off): the shape distance alone tells the second person."""
    import engine.reconstruct.video

    monkeypatch.setattr(engine.reconstruct.video, "CutDetector", lambda: lambda frame: False)
    video = write_video(tmp_path / "swap.mp4", [face] * 4 + [someone_else(face)] * 3)
    reconstruct_video(landmark_fit, video, tmp_path / "out")
    tracks = [line["track"] for line in read_jsonl(tmp_path / "out" / "frames.jsonl")]
    assert tracks == [0] * 4 + [1] * 3


def test_one_person_moving_stays_one_track(tmp_path, face, landmark_fit, quick_video):
    video = write_video(tmp_path / "one.mp4", moving(face, 6))
    reconstruct_video(landmark_fit, video, tmp_path / "out")
    assert {line["track"] for line in read_jsonl(tmp_path / "out" / "frames.jsonl")} == {0}


# ------------------------------------------------------------------------------ 8: all or nothing


def fail_on(monkeypatch, name: str, error: BaseException):
    real = engine.io.mesh.write_png

    def write_png(image, path):
        if Path(path).name == name:
            raise error
        return real(image, path)

    monkeypatch.setattr(engine.io.mesh, "write_png", write_png)


def test_ctrl_c_mid_photo_leaves_no_half_folder(tmp_path, sample, cli, monkeypatch, capsys):
    photo = tmp_path / "p.png"
    Image.fromarray(sample).save(photo)
    fail_on(monkeypatch, "albedo.png", KeyboardInterrupt())
    assert cli(["reconstruct", str(photo), "-o", str(tmp_path / "out")]) == 130
    assert list((tmp_path / "out").iterdir()) == []  # neither the folder nor a hidden stage


@pytest.mark.parametrize("existing", [False, True])
def test_full_disk_mid_photo(tmp_path, sample, cli, monkeypatch, capsys, existing):
    photo = tmp_path / "p.png"
    Image.fromarray(sample).save(photo)
    out = tmp_path / "out"
    if existing:
        assert cli(["reconstruct", str(photo), "-o", str(out)]) == 0
        before = files_of(out / "p")
    capsys.readouterr()
    fail_on(monkeypatch, "shading.png", OSError(errno.ENOSPC, "No space left on device"))
    assert cli(["reconstruct", str(photo), "-o", str(out)]) == 1
    errors = error_lines(capsys.readouterr().err)
    assert len(errors) == 1 and "the disk is full" in errors[0], errors
    assert ".staging" not in errors[0]
    if existing:
        assert "previous files" in errors[0] and files_of(out / "p") == before
    else:
        assert "nothing was written" in errors[0] and not (out / "p").exists()
    assert not hidden(out) if out.exists() else True


def test_nan_is_never_written_as_json(tmp_path):
    from engine.errors import CestError

    with pytest.raises(CestError, match="not numbers"):
        engine.io.mesh.write_json({"x": float("nan")}, tmp_path / "a.json")
    assert not (tmp_path / "a.json").exists()


def test_no_face_message_mentions_small_faces(fast_reconstructor):
    with pytest.raises(NoFaceError, match="too small"):
        fast_reconstructor.reconstruct(np.full((300, 300, 3), 128, np.uint8))


def test_a_rerun_without_the_optional_outputs_removes_the_previous_ones(tmp_path, face, fast_reconstructor):
    """reconstruction.mp4 and the animation of an earlier run would not match the new frames."""
    from engine.reconstruct.video import reconstruct_video

    video = write_video(tmp_path / "v.mp4", moving(face, 3))
    out = tmp_path / "out"
    reconstruct_video(fast_reconstructor, video, out, preview=True, animation=True)
    assert {"reconstruction.mp4", "animation.glb", "blendshapes.csv"} <= {p.name for p in out.iterdir()}
    reconstruct_video(fast_reconstructor, video, out)
    assert not {"reconstruction.mp4", "animation.glb", "blendshapes.csv"} & {p.name for p in out.iterdir()}
    assert (out / "frames.jsonl").exists()
