"""Several photos of one person: one shape and one albedo, each photo keeping its own pose and
expression; the fixed-identity fit; ``cest reconstruct --same-person``."""

from __future__ import annotations

import json

import numpy as np
import torch
from PIL import Image

from engine.camera import project, to_camera
from engine.cli import main
from engine.model.fit import fit_with_identity
from tests.conftest import random_params


def test_fit_with_identity_recovers_pose_and_expression(face_model):
    truth = random_params(face_model, 3, seed=4)
    truth = truth.replace(identity=truth.identity[:1].expand(3, -1).clone())
    verts = face_model.vertices(truth.identity, truth.expression)
    ndc = project(to_camera(verts, truth.rotation), truth.scale, truth.translation)[
        :, face_model.landmarks, :2
    ]
    fit = fit_with_identity(face_model, ndc, truth.identity[:1])
    assert float(fit.rms_error.max()) < 0.01
    np.testing.assert_allclose(fit.rotation.numpy(), truth.rotation.numpy(), atol=0.03)
    assert torch.equal(fit.identity, truth.identity)


def test_cli_same_person_shares_shape_and_albedo(tmp_path, sample_image):
    photos = []
    for i, shift in enumerate((0, 10, 20)):
        path = tmp_path / f"photo{i}.png"
        Image.fromarray(
            np.ascontiguousarray(np.roll(sample_image, shift, axis=1)[:, :: 1 - 2 * (i == 2)])
        ).save(path)
        photos.append(str(path))
    out = tmp_path / "out"
    assert (
        main(["reconstruct", "--same-person", *photos, "-o", str(out), "--method", "fit", "--formats", "obj"])
        == 0
    )
    person = json.loads((out / "person" / "person.json").read_text())
    assert len(person["photos"]) == 3 and (out / "person" / "face.obj").exists()
    params = [json.loads((out / f"photo{i}" / "params.json").read_text()) for i in range(3)]
    for p in params:
        np.testing.assert_allclose(p["identity"], person["identity"], atol=1e-6)  # one shape
    assert not np.allclose(
        params[0]["viewpoint"]["rotation_pitch_yaw_roll_rad"],
        params[2]["viewpoint"]["rotation_pitch_yaw_roll_rad"],
        atol=1e-3,
    )  # own poses
    albedos = [np.asarray(Image.open(out / f"photo{i}" / "albedo.png"), np.float32) for i in range(3)]
    assert (out / "photo0" / "face_albedo.png").read_bytes() == (
        out / "photo1" / "face_albedo.png"
    ).read_bytes()
    assert albedos[0].std() > 1


def test_cli_same_person_needs_two_photos(tmp_path, sample_image):
    path = tmp_path / "one.png"
    Image.fromarray(sample_image).save(path)
    assert (
        main(["reconstruct", "--same-person", str(path), "-o", str(tmp_path / "o"), "--method", "fit"]) == 2
    )
