"""Exports never leave a half-written file where a good one stood: a full disk (patched, or a real
tmpfs), a kill mid-write, a failure half-way through a video; and what is written is readable."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from engine.errors import CestError, WriteError
from engine.io import mesh as export
from tests.robustness.conftest import PYTHON, ROOT, SAMPLE, cheap_views, error_lines, read_jsonl, small_tmpfs


@pytest.fixture
def writer(monkeypatch, fast_reconstructor):
    """write_reconstruction with the quick stand-in for rendering."""
    import engine.reconstruct.views

    monkeypatch.setattr(engine.reconstruct.views, "render_views", cheap_views)
    return lambda recon, folder, formats=export.MESH_FORMATS: engine.reconstruct.views.write_reconstruction(
        fast_reconstructor, recon, folder, formats
    )


@pytest.fixture(scope="module")
def two_recons(fast_reconstructor):
    from engine.io.image import load_image

    image = load_image(SAMPLE)
    first = fast_reconstructor.reconstruct(image)
    second = fast_reconstructor.reconstruct(np.ascontiguousarray(np.roll(image, 40, axis=1)))
    return first, second


def fill_up(disk: Path) -> None:
    """Fill a small disk to the last block."""
    with open(disk / "filler", "wb", buffering=0) as handle:
        try:
            while True:
                handle.write(b"\0" * 4096)
        except OSError:
            pass


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def fail_on_write(monkeypatch, nth: int) -> list[str]:
    """From the nth atomic write on, the disk fills half-way through each temporary file."""
    real, seen = Path.write_bytes, []

    def write_bytes(self, data):
        if self.name.startswith(".") and self.name.endswith(".tmp"):
            seen.append(self.name)
            if len(seen) >= nth:
                real(self, bytes(data)[: len(data) // 2])
                raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", write_bytes)
    return seen


@pytest.mark.parametrize("nth", [1, 4, 8, 11])
def test_full_disk_part_way_through_an_export(tmp_path, writer, two_recons, monkeypatch, nth):
    """Every file is either the previous export's or the new one's, whole; never a torn one."""
    old, new = two_recons
    writer(new, tmp_path / "reference")
    writer(old, tmp_path / "out")
    before, reference = snapshot(tmp_path / "out"), snapshot(tmp_path / "reference")
    assert before.keys() == reference.keys() and before != reference
    fail_on_write(monkeypatch, nth)
    with pytest.raises(WriteError) as info:
        writer(new, tmp_path / "out")
    monkeypatch.undo()
    message = str(info.value)
    assert isinstance(info.value, CestError) and info.value.errno == errno.ENOSPC
    assert "disk is full" in message and "previous file is kept" in message and "\n" not in message
    after = snapshot(tmp_path / "out")
    assert after.keys() == before.keys(), "no temporary file left, none missing"
    for name, data in after.items():
        assert data in (before[name], reference[name]), f"{name} is torn"
    changed = [name for name in after if after[name] != before[name]]
    assert len(changed) <= nth - 1  # only the files written before the failure are new


def test_really_full_disk_during_an_export(tmp_path, writer, two_recons):
    old, new = two_recons
    writer(old, tmp_path / "probe")
    size = sum(len(v) for v in snapshot(tmp_path / "probe").values())
    with small_tmpfs(tmp_path / "disk", str(2 * size + (1 << 20))) as disk:
        writer(old, disk / "out")
        before = snapshot(disk / "out")
        fill_up(disk)
        with pytest.raises(WriteError, match="disk is full"):
            writer(new, disk / "out")
        assert snapshot(disk / "out") == before


def test_kill_during_an_export_keeps_the_old_file(tmp_path, two_recons, fast_reconstructor):
    """SIGKILL while face.glb is half written: the old face.glb is untouched."""
    old, new = two_recons
    export.write_glb(fast_reconstructor.mesh(old.params), tmp_path / "face.glb")
    good = (tmp_path / "face.glb").read_bytes()
    mesh = fast_reconstructor.mesh(new.params)
    np.savez(
        tmp_path / "mesh.npz", vertices=mesh.vertices, faces=mesh.faces, uvs=mesh.uvs, texture=mesh.texture
    )
    code = """
import sys, time
from pathlib import Path
import numpy as np
from engine.io import mesh as export
real = Path.write_bytes
def hang(self, data):
    real(self, bytes(data)[: len(data) // 2])
    open(sys.argv[2], "w").close()
    time.sleep(600)
Path.write_bytes = hang
m = np.load(sys.argv[1])
export.write_glb(export.MeshData(m["vertices"], m["faces"], m["uvs"], m["texture"]), sys.argv[3])
"""
    flag = tmp_path / "writing"
    args = [str(tmp_path / "mesh.npz"), str(flag), str(tmp_path / "face.glb")]
    proc = subprocess.Popen(
        [PYTHON, "-c", code, *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    deadline = time.monotonic() + 120
    while not flag.exists():
        assert proc.poll() is None, proc.stdout.read().decode()[-2000:]
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (tmp_path / "face.glb").read_bytes() == good
    import trimesh

    assert len(trimesh.load(tmp_path / "face.glb", force="mesh").vertices) == len(mesh.vertices)


def test_written_files_get_ordinary_permissions(tmp_path):
    """Atomic writes go through mkstemp (mode 0600); the result must be readable like any file."""
    umask = os.umask(0o022)
    os.umask(umask)
    export.write_png(np.zeros((4, 4, 3), np.uint8), tmp_path / "a.png")
    assert (tmp_path / "a.png").stat().st_mode & 0o777 == 0o666 & ~umask
    (tmp_path / "b.json").write_text("{}")
    os.chmod(tmp_path / "b.json", 0o640)
    export.write_json({"x": 1}, tmp_path / "b.json")  # replacing a file keeps its permissions
    assert (tmp_path / "b.json").stat().st_mode & 0o777 == 0o640


# ------------------------------------------------------------------------------------- the CLI


def test_cli_on_a_full_disk_reports_each_input_and_goes_on(tmp_path, cli, monkeypatch, capsys):
    a, b = tmp_path / "a.png", tmp_path / "b.png"
    a.write_bytes(SAMPLE.read_bytes())
    b.write_bytes(SAMPLE.read_bytes())
    fail_on_write(monkeypatch, 1)
    status = cli(["reconstruct", str(a), str(b), "-o", str(tmp_path / "out"), "--formats", "obj"])
    errors = error_lines(capsys.readouterr().err)
    assert status == 1 and len(errors) == 2, errors
    for path, line in zip((a, b), errors):
        assert line.startswith(f"error: {path}: cannot write ") and "disk is full" in line
    assert not (tmp_path / "out" / "a").exists() and not (tmp_path / "out" / "b").exists()  # no empty folders


def test_cli_output_folder_is_a_file(tmp_path, cli, capsys):
    (tmp_path / "out").write_text("I am a file")
    status = cli(["reconstruct", str(SAMPLE), "-o", str(tmp_path / "out"), "--formats", "obj"])
    errors = error_lines(capsys.readouterr().err)
    assert status == 1 and len(errors) == 1 and str(SAMPLE) in errors[0], errors
    assert (tmp_path / "out").read_text() == "I am a file"


# ------------------------------------------------------------------------------------ videos


def _clip(path: Path, n: int) -> Path:
    from PIL import Image

    from engine.io.video import VideoWriter

    face = np.asarray(Image.open(SAMPLE).convert("RGB").crop((110, 10, 340, 262)).resize((240, 264)))
    with VideoWriter(path, 10) as out:
        for i in range(n):
            out.write(np.roll(face, 2 * i, axis=1))
    return path


def test_video_failing_half_way_keeps_the_previous_outputs(
    tmp_path, cli, fast_reconstructor, monkeypatch, capsys
):
    """A second run over the same output folder fails at frame 2 (a detector bug, simulated): one
    error line, the first run's frames.jsonl and reconstruction.mp4 are as they were, and the next
    input of the batch is still done."""
    clip = _clip(tmp_path / "clip.mp4", 3)
    assert cli(["reconstruct", str(clip), "-o", str(tmp_path / "out")]) == 0
    before = snapshot(tmp_path / "out" / "clip")
    detector, calls = fast_reconstructor.detector, []

    def flaky(find):
        def call(*args):
            calls.append(1)
            if len(calls) == 3:
                raise RuntimeError("simulated detector crash")
            return find(*args)

        return call

    # a video detects its first frame and tracks the face through the next ones
    monkeypatch.setattr(detector, "detect", flaky(detector.detect))
    monkeypatch.setattr(detector, "track", flaky(detector.track))
    status = cli(["reconstruct", str(clip), str(SAMPLE), "-o", str(tmp_path / "out"), "--formats", "obj"])
    errors = error_lines(capsys.readouterr().err)
    assert status == 1 and len(errors) == 1 and "simulated detector crash" in errors[0], errors
    assert errors[0].startswith(f"error: {clip}: unexpected RuntimeError")
    assert snapshot(tmp_path / "out" / "clip") == before
    assert (tmp_path / "out" / "astronaut" / "face.obj").exists()  # the batch went on
    assert not [p for p in (tmp_path / "out" / "clip").iterdir() if p.name.startswith(".")]


def test_stopped_video_keeps_every_frame_written(tmp_path, fast_reconstructor, quick_video):
    """Stopping after 3 frames (the app's cancel, or Ctrl-C) finalises both files with 3 frames."""
    from engine.io.video import iter_frames
    from engine.reconstruct.video import reconstruct_video

    clip = _clip(tmp_path / "clip.mp4", 5)
    done = []
    stats = reconstruct_video(
        fast_reconstructor,
        clip,
        tmp_path / "out",
        progress=lambda i, n: done.append(i),
        stop=lambda: len(done) >= 3,
        preview=True,
    )
    assert stats["interrupted"] and stats["frames"] == 3
    assert [r["frame"] for r in read_jsonl(tmp_path / "out" / "frames.jsonl")] == [0, 1, 2]
    assert len(list(iter_frames(tmp_path / "out" / "reconstruction.mp4"))) == 3
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["frames"] == 3


def test_video_on_a_really_full_disk(tmp_path, fast_reconstructor, quick_video):
    """A second run into a folder on a full tmpfs: a WriteError naming the file, and the first
    run's files kept."""
    from engine.reconstruct.video import reconstruct_video

    clip = _clip(tmp_path / "clip.mp4", 3)
    reconstruct_video(fast_reconstructor, clip, tmp_path / "probe")
    size = sum(p.stat().st_size for p in (tmp_path / "probe").iterdir() if p.is_file())
    with small_tmpfs(tmp_path / "disk", str(2 * size + (1 << 20))) as disk:
        reconstruct_video(fast_reconstructor, clip, disk / "out")
        before = snapshot(disk / "out")
        fill_up(disk)
        with pytest.raises(WriteError, match="disk is full") as info:
            reconstruct_video(fast_reconstructor, clip, disk / "out")
        assert str(disk / "out") in str(info.value)
        assert snapshot(disk / "out") == before
