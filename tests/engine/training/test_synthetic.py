"""Synthetic faces: deterministic, ground truth consistent with the image; clip helpers; the bank."""

import dataclasses

import numpy as np
import pytest
import torch

from engine.camera import ndc_to_pixels
from engine.detect.base import Face
from engine.training.data.albedo import procedural_albedo
from engine.training.data.bank import SyntheticBank
from engine.training.data.clip import MIRROR_68, collate, face_mask, flip_clip
from engine.training.data.synthetic import SyntheticConfig, SyntheticFaces

CONFIG = SyntheticConfig(image_size=64, texture_size=32, frames=3, landmark_noise_px=0.0, jitter=0.02)


@pytest.fixture(scope="module")
def faces(face_model):
    return SyntheticFaces(CONFIG, length=4, seed=5, face_model=face_model)


def test_items_are_deterministic_and_splits_differ(faces, face_model):
    a, b = faces[1], faces[1]
    assert torch.equal(a["image"], b["image"])
    heldout = SyntheticFaces(CONFIG, length=4, seed=5, split="heldout", face_model=face_model)
    assert not torch.equal(heldout[1]["image"], a["image"])
    with pytest.raises(IndexError):
        faces[4]


def test_a_clip_is_one_person_in_changing_poses(faces):
    clip = faces[0]
    p = clip["params"]
    assert clip["image"].shape == (3, 3, 64, 64) and clip["image"].dtype == torch.uint8
    assert torch.equal(p.identity[0], p.identity[2]) and torch.equal(p.albedo[0], p.albedo[2])
    assert not torch.equal(p.rotation[0], p.rotation[2])


class _Detector:
    """Finds, per call, the next of its answers: points (68, 2) or nothing (None)."""

    def __init__(self, answers):
        self.answers = list(answers)

    def detect(self, image):
        points = self.answers.pop(0)
        return [] if points is None else [Face(np.zeros(4, np.float32), points, 1.0)]


def test_detected_landmarks_replace_the_true_points_where_the_detector_finds_the_face(face_model):
    config = dataclasses.replace(CONFIG, detected_landmarks=True)
    faces = SyntheticFaces(config, length=1, seed=5, face_model=face_model)
    plain = SyntheticFaces(CONFIG, length=1, seed=5, face_model=face_model)[0]
    true = plain["landmarks"].numpy()
    near = true[0] + 0.5  # the detector's points on frame 0: half a pixel off
    faces._detector = _Detector([near, None, true[2] + 40.0])  # found / no face / another face
    clip = faces[0]
    assert np.allclose(clip["landmarks"][0].numpy(), near)
    assert np.allclose(clip["landmarks"][1:].numpy(), true[1:])  # the true points kept elsewhere
    assert torch.equal(clip["image"], plain["image"])


def test_ground_truth_matches_the_image(faces, face_model):
    clip = faces[2]
    p = clip["params"]
    _, cam, ndc = p.geometry(face_model)
    projected = ndc_to_pixels(face_model.landmark_vertices(ndc, p.rotation)[..., :2], 64)
    assert torch.allclose(projected, clip["landmarks"], atol=1e-3)
    out = faces.renderer.render(cam, ndc, p.albedo, p.light, 64)
    inside = clip["mask"] > 0.999  # fully covered pixels show the face exactly
    image = clip["image"].float() / 255
    err = (image - out.image.clamp(0, 1)).abs() * inside
    assert err.max() <= 1 / 255 + 1e-4
    assert inside.float().mean() > 0.15  # the face fills a good part of the crop


def test_faces_are_framed_near_the_centre(faces, face_model):
    for i in range(len(faces)):
        lm = faces[i]["landmarks"]
        centre = lm.reshape(-1, 2).mean(0)
        assert (centre - 32).abs().max() < 12
        extent = lm[..., 0].max() - lm[..., 0].min()
        assert 16 < extent < 64


def test_maps_are_kept_on_request(face_model):
    clip = SyntheticFaces(
        SyntheticConfig(image_size=32, texture_size=16, frames=1, with_maps=True),
        length=1,
        face_model=face_model,
    )[0]
    assert clip["depth"].shape == (1, 1, 32, 32) and clip["normals"].shape == (1, 3, 32, 32)


def test_procedural_albedo_is_nearly_symmetric(face_model):
    albedo = procedural_albedo(np.random.default_rng(0), face_model, 64)
    assert albedo.shape == (3, 64, 64) and 0 <= albedo.min() and albedo.max() <= 1
    assert np.abs(albedo - albedo[..., ::-1]).mean() < 0.03
    other = procedural_albedo(np.random.default_rng(1), face_model, 64)
    assert np.abs(albedo - other).mean() > 0.01


def test_bank_returns_the_rendered_clips(faces, tmp_path):
    bank = SyntheticBank.load_or_build(CONFIG, 4, 5, "train", tmp_path, faces.model)
    again = SyntheticBank.load_or_build(CONFIG, 4, 5, "train", tmp_path, faces.model)  # from disk
    direct = faces[3]
    for loaded in (bank[3], again[3]):
        assert torch.equal(loaded["image"], direct["image"])
        assert torch.allclose(loaded["params"].rotation, direct["params"].rotation)
        assert torch.allclose(loaded["params"].albedo, direct["params"].albedo, atol=1e-3)


def test_mirror_map_is_an_involution():
    assert sorted(MIRROR_68) == list(range(68))
    assert (MIRROR_68[MIRROR_68] == np.arange(68)).all()


def test_flip_clip_mirrors_landmarks(faces):
    clip = faces[0]
    flipped = flip_clip(clip)
    assert torch.equal(flipped["image"], clip["image"].flip(-1))
    assert torch.allclose(flipped["landmarks"][:, 0, 0], 63 - clip["landmarks"][:, 16, 0])
    assert "params" not in flipped


def test_face_mask_covers_the_landmarks(faces):
    lm = faces[0]["landmarks"][0].numpy()
    mask = face_mask(lm, 64)
    inner = np.round(lm[17:]).astype(int)
    assert mask[inner[:, 1].clip(0, 63), inner[:, 0].clip(0, 63)].mean() > 0.95
    assert 0.1 < mask.mean() < 0.9


def test_collate_mixes_real_and_synthetic(faces):
    real = flip_clip(faces[0])
    batch = collate([faces[1], real])
    assert batch["image"].shape == (6, 3, 64, 64) and batch["image"].max() <= 1
    assert batch["clip_id"].tolist() == [0, 0, 0, 1, 1, 1]
    assert batch["gt_has"].tolist() == [True] * 3 + [False] * 3
    assert batch["landmarks"].abs().max() < 1.2  # crop NDC
    assert batch["gt_albedo"].shape == (6, 3, 32, 32)


def test_the_supervised_loss_is_zero_at_the_ground_truth_and_grows_away_from_it(faces, face_model):
    from engine.params import FaceParams
    from engine.training.losses import supervised_loss

    batch = collate([faces[1], flip_clip(faces[0])])  # synthetic frames, then frames without truth
    truth = FaceParams.cat([faces[1]["params"], faces[1]["params"]])  # the last 3 rows stand in
    _, _, ndc = truth.geometry(face_model)
    assert float(supervised_loss(truth, ndc, batch, face_model)) < 1e-6
    wrong = truth.replace(identity=truth.identity + 0.5, light=truth.light * 1.2)
    _, _, wrong_ndc = wrong.geometry(face_model)
    assert float(supervised_loss(wrong, wrong_ndc, batch, face_model)) > 1e-3


def test_the_shape_only_supervised_loss_ignores_the_viewpoint_and_not_the_shape(faces, face_model):
    from engine.params import FaceParams
    from engine.training.losses import LossWeights, supervised_loss

    batch = collate([faces[1]])
    truth = FaceParams.cat([faces[1]["params"]])
    turned = truth.replace(rotation=truth.rotation + 0.2, translation=truth.translation + 0.05)
    _, _, turned_ndc = turned.geometry(face_model)
    assert float(supervised_loss(turned, turned_ndc, batch, face_model, viewpoint=0.0)) < 1e-6
    assert float(supervised_loss(turned, turned_ndc, batch, face_model, viewpoint=1.0)) > 1e-2
    other = truth.replace(identity=truth.identity + 0.5)
    _, _, other_ndc = other.geometry(face_model)
    assert float(supervised_loss(other, other_ndc, batch, face_model, viewpoint=0.0)) > 1e-3
    with pytest.raises(ValueError, match="supervised_viewpoint"):
        LossWeights.from_dict({"supervised_viewpoint": 2.0})
