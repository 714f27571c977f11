"""Expression transfer: the target keeps everything but its expression, which is the source's;
``cest reconstruct TARGET --expressions-from SOURCE`` with a photo or a video as the source."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from engine.cli import main
from engine.reconstruct.expressions import regions, transfer, with_expression
from tests.conftest import random_params


def test_transfer_changes_only_the_expression(face_model):
    target, source = random_params(face_model, 1, seed=1), random_params(face_model, 1, seed=2)
    moved = transfer(target, source)
    assert torch.equal(moved.expression, source.expression)
    for name in ("identity", "albedo", "light", "rotation", "translation", "scale"):
        assert torch.equal(getattr(moved, name), getattr(target, name)), name
    clipped = with_expression(target, [2.0] * face_model.n_expression)
    assert clipped.expression.max() == 1.0
    with pytest.raises(ValueError):
        with_expression(target, [0.0] * 3)


def test_regions_cover_every_expression_once(face_model):
    grouped = regions(face_model.expression_names)
    assert list(grouped) == ["brows", "eyes", "cheeks", "mouth", "jaw"]
    assert sorted(i for ids in grouped.values() for i in ids) == list(range(face_model.n_expression))
    assert face_model.expression_names.index("jawOpen") in grouped["jaw"]


@pytest.fixture()
def photos(tmp_path, sample_image):
    target, source = tmp_path / "target.png", tmp_path / "smile.png"
    Image.fromarray(sample_image).save(target)
    Image.fromarray(np.ascontiguousarray(sample_image[:, ::-1])).save(source)  # another expression estimate
    return target, source


def _params(folder):
    return json.loads((folder / "params.json").read_text())


def test_cli_photo_source(tmp_path, photos):
    target, source = photos
    own, out = tmp_path / "own", tmp_path / "out"
    assert main(["reconstruct", str(target), str(source), "-o", str(own), "--method", "fit"]) == 0
    assert (
        main(
            [
                "reconstruct",
                str(target),
                "-o",
                str(out),
                "--method",
                "fit",
                "--expressions-from",
                str(source),
                "--formats",
                "obj",
            ]
        )
        == 0
    )
    moved, target_own, source_own = _params(out / "target"), _params(own / "target"), _params(own / "smile")
    # The same photos' fits, to rounding: the landmark refiner's points (OpenCV's float sums) may
    # differ by 1e-4 px between two runs of one photo, its fit by ~1e-4; another face's
    # coefficients differ by > 0.1.
    np.testing.assert_allclose(moved["expression"], source_own["expression"], atol=1e-3)
    np.testing.assert_allclose(moved["identity"], target_own["identity"], atol=1e-3)
    assert not np.allclose(target_own["expression"], source_own["expression"], atol=1e-3)
    assert (out / "target" / "face.obj").exists()


def test_cli_video_source_animates_the_target(tmp_path, photos, sample_image):
    from engine.io.video import VideoWriter

    target, _ = photos
    clip = tmp_path / "performer.mp4"
    with VideoWriter(clip, 25) as writer:
        for i in range(4):
            writer.write(np.roll(sample_image, 5 * i, axis=0))
    out = tmp_path / "out"
    assert (
        main(
            [
                "reconstruct",
                str(target),
                "-o",
                str(out),
                "--method",
                "fit",
                "--expressions-from",
                str(clip),
                "--formats",
                "obj",
            ]
        )
        == 0
    )
    folder = out / "target"
    assert (folder / "animation.glb").stat().st_size > 0
    assert len((folder / "blendshapes.csv").read_text().splitlines()) == 1 + 4
    assert not list(tmp_path.glob(".cest-transfer-*")), "the source's scratch folder is removed"


def test_cli_refuses_a_video_target(tmp_path, photos):
    target, _ = photos
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(b"")
    assert (
        main(
            [
                "reconstruct",
                str(clip),
                "-o",
                str(tmp_path / "o"),
                "--expressions-from",
                str(target),
                "--method",
                "fit",
            ]
        )
        == 2
    )
