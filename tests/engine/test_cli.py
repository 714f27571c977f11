"""End to end: `cest reconstruct` on the sample photo, bad inputs, a folder and a short video."""

import json
import shutil

import numpy as np
import pytest
import trimesh

from engine.cli import main
from tests.conftest import SAMPLE

EXPECTED = {
    "face.obj",
    "face.mtl",
    "face_albedo.png",
    "face.ply",
    "face.glb",
    "params.json",
    "depth.png",
    "normals.png",
    "albedo.png",
    "shading.png",
    "preview.png",
}


@pytest.fixture(scope="module")
def reconstructed(tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    bad = out.parent / "not_an_image.jpg"
    bad.write_text("hello")
    status = main(
        [
            "reconstruct",
            str(SAMPLE),
            str(bad),
            str(out.parent / "missing.png"),
            "-o",
            str(out),
            "--method",
            "fit",
        ]
    )
    return status, out


def test_sample_writes_every_file(reconstructed):
    status, out = reconstructed
    assert status == 1  # two of the three inputs were bad ...
    assert {p.name for p in (out / "astronaut").iterdir()} == EXPECTED  # ... the good one is complete


def test_outputs_are_sane(reconstructed):
    _, out = reconstructed
    folder = out / "astronaut"
    params = json.loads((folder / "params.json").read_text())
    assert params["method"] == "fit"
    assert len(params["identity"]) == 80 and len(params["expression"]) == 53
    assert np.array(params["sh_light_9x3"]).shape == (9, 3)
    assert abs(params["viewpoint"]["rotation_pitch_yaw_roll_rad"][1]) < 0.3  # the astronaut faces us
    mesh = trimesh.load(folder / "face.obj", process=False)
    assert len(mesh.vertices) > 1000 and mesh.visual.uv is not None
    from PIL import Image

    preview = np.asarray(Image.open(folder / "preview.png"))
    assert preview.shape == (256, 5 * 256, 3)
    render, albedo = preview[:, 256:512].astype(int), preview[:, 512:768]
    assert np.abs(render - preview[:, :256].astype(int)).mean() < 25  # the re-render looks like the input
    assert (albedo.sum(-1) > 0).mean() > 0.4  # the albedo covers the face
    from engine.reconstruct.views import PREVIEW_PANELS, label_panel

    for i, (_, text) in enumerate(PREVIEW_PANELS):  # each panel says what it is
        corner = preview[:20, 256 * i : 256 * i + 40]
        assert (corner > 200).any() and (corner < 60).mean() > 0.3, text
    blank = np.zeros((256, 256, 3), np.uint8)
    assert not np.array_equal(label_panel(blank, "input"), label_panel(blank, "albedo"))


def test_piped_output_keeps_bars_and_error_lines_apart(tmp_path, capsys):
    bad = tmp_path / "notes.jpg"
    bad.write_text("hello")
    assert (
        main(
            [
                "reconstruct",
                str(bad),
                str(SAMPLE),
                str(bad),
                "-o",
                str(tmp_path / "out"),
                "--method",
                "fit",
                "--formats",
                "ply",
            ]
        )
        == 1
    )
    err = capsys.readouterr().err
    assert "\r" not in err, "no progress bar redraws when stderr is not a terminal"
    assert all(line.startswith("error:") for line in err.splitlines() if "error:" in line)
    assert "XNNPACK" not in err


def test_no_tensorflow_lite_info_line(tmp_path):
    import subprocess
    import sys

    from tests.conftest import ROOT

    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "engine.cli",
            "reconstruct",
            str(SAMPLE),
            "-o",
            str(tmp_path),
            "--method",
            "fit",
            "--formats",
            "ply",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "TensorFlow Lite" not in out.stderr + out.stdout


def test_bad_inputs_give_one_line_errors(tmp_path, capsys):
    bad = tmp_path / "notes.jpg"
    bad.write_text("hello")
    assert main(["reconstruct", str(bad), str(tmp_path / "missing.png"), "-o", str(tmp_path / "out")]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert errors == [
        f"error: {bad}: not a readable image (cannot identify image file '{bad}')",
        f"error: {tmp_path / 'missing.png'}: no such file",
    ]
    assert not (tmp_path / "out" / "notes").exists()


def test_folder_input_and_exit_zero(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(SAMPLE, photos / "a.png")
    assert (
        main(["reconstruct", str(photos), "-o", str(tmp_path / "out"), "--method", "fit", "--formats", "obj"])
        == 0
    )
    assert (tmp_path / "out" / "a" / "face.obj").exists()
    assert not (tmp_path / "out" / "a" / "face.glb").exists()


def test_photo_without_a_face(tmp_path):
    from PIL import Image

    Image.new("RGB", (200, 200), (90, 140, 200)).save(tmp_path / "sky.png")
    assert (
        main(["reconstruct", str(tmp_path / "sky.png"), "-o", str(tmp_path / "out"), "--method", "fit"]) == 1
    )


def test_video_end_to_end(tmp_path, sample_image):
    from engine.io.video import VideoWriter, iter_frames

    clip = tmp_path / "clip.mp4"
    with VideoWriter(clip, 25) as writer:
        for i in range(6):
            writer.write(np.roll(sample_image, 6 * i, axis=1))
    assert (
        main(
            [
                "reconstruct",
                str(clip),
                "-o",
                str(tmp_path / "out"),
                "--method",
                "fit",
                "--meshes",
                "--preview-video",
            ]
        )
        == 0
    )
    folder = tmp_path / "out" / "clip"
    lines = [json.loads(line) for line in (folder / "frames.jsonl").read_text().splitlines()]
    assert [line["frame"] for line in lines] == list(range(6))
    # One person: the identity is a running mean over the track, so it settles as frames come.
    ids = np.array([line["identity"] for line in lines])
    assert np.abs(ids[-1] - ids[-2]).max() <= np.abs(ids[1] - ids[0]).max() + 1e-6
    frames = list(iter_frames(folder / "reconstruction.mp4"))
    assert len(frames) == 6 and frames[0][2].shape == (256, 512, 3)
    assert len(list((folder / "meshes").glob("*.ply"))) == 6
    assert (folder / "face.obj").exists()
    assert json.loads((folder / "summary.json").read_text())["faces"] == 6
