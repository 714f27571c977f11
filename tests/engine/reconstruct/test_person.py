"""One person across frames: the reflectance is estimated on every ALBEDO_STRIDE-th frame of a track
and reused in between, and every frame carries the person's running albedo."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from engine.reconstruct.person import ALBEDO_STRIDE, PersonAlbedo
from tests.conftest import random_params


class _Recon:
    def __init__(self, params, albedo: float):
        self.params, self.own, self.albedo_reused = params, albedo, False
        self.extras = {"detail_pending": torch.ones(())}


class _Reconstructor:
    """Estimates a frame's own constant albedo unless given one to reuse; no detail."""

    def __init__(self):
        self.given: list[float | None] = []

    def estimate_appearance(self, recon, albedo=None):
        self.given.append(None if albedo is None else float(albedo.mean()))
        value = recon.own if albedo is None else albedo
        recon.params = recon.params.replace(albedo=torch.full_like(recon.params.albedo, 1) * value)
        recon.albedo_reused = albedo is not None

    def add_detail(self, recon):
        recon.extras.pop("detail_pending")


def _frame(face_model, albedo: float) -> _Recon:
    return _Recon(random_params(face_model, batch=1, seed=0), albedo)


def test_the_reflectance_is_estimated_every_stride_and_reused_between(face_model):
    person, rec = PersonAlbedo(), _Reconstructor()
    frames = [_frame(face_model, 0.1 * (1 + i)) for i in range(2 * ALBEDO_STRIDE)]
    for frame in frames:
        person.finish(rec, frame, number=0)
    estimated = [i for i, given in enumerate(rec.given) if given is None]
    assert estimated == [0, ALBEDO_STRIDE]
    assert all(rec.given[i] == pytest.approx(0.1) for i in range(1, ALBEDO_STRIDE))  # frame 0's
    first, between, second = frames[0], frames[1], frames[ALBEDO_STRIDE]
    assert torch.equal(between.params.albedo, first.params.albedo)  # the mean as it stood
    assert "detail_pending" not in between.extras  # no detail unwrapped for a reused albedo
    mean = (0.1 + 0.1 * (1 + ALBEDO_STRIDE)) / 2
    assert torch.allclose(second.params.albedo, torch.tensor(mean), atol=0.01)  # estimated frames' mean
    other = _frame(face_model, 0.7)
    person.finish(rec, other, number=1)  # another person: their own estimate and mean
    assert rec.given[-1] is None and torch.allclose(other.params.albedo, torch.tensor(0.7))


def test_a_known_albedo_skips_the_reflectance_network(face_model):
    from engine.model.chain import CestConfig, CestModel

    model = CestModel(CestConfig(image_size=64, texture_size=32, width=8, features=32), face_model).eval()
    torch.manual_seed(0)
    with torch.no_grad():  # an untrained light head outputs zeros whatever it sees
        for weight in model.illumination.parameters():
            weight.add_(0.05 * torch.randn_like(weight))
    calls = []
    model.reflectance.register_forward_hook(lambda *a: calls.append(1))
    image = torch.rand(1, 3, 64, 64)
    known = torch.full((1, 3, 32, 32), 0.3)
    with torch.no_grad():
        out = model.estimate(image, albedo=known)
        assert calls == [] and torch.equal(out.params.albedo, known)
        own = model.estimate(image)
    assert calls == [1] and not torch.equal(own.params.albedo, known)
    assert not torch.equal(out.params.light, own.params.light)  # f_l conditioned on the given albedo
    with pytest.raises(ValueError, match="32 px"):
        model.estimate(image, albedo=torch.zeros(1, 3, 16, 16))


def test_a_video_estimates_the_reflectance_on_every_strided_frame(tmp_path, monkeypatch):
    from engine.reconstruct.reconstructor import Reconstructor, default_weights
    from engine.reconstruct.video import reconstruct_video
    from tests.conftest import make_video

    if default_weights() is None:
        pytest.skip("no shipped CEST weights")
    recon = Reconstructor(method="cest")
    calls = []
    recon.network.reflectance.register_forward_hook(lambda *a: calls.append(1))
    seen = []
    summary = reconstruct_video(
        recon,
        make_video(tmp_path / "clip.mp4"),
        tmp_path / "out",
        stop=lambda: False,
        on_frame=lambda index, r: seen.append(r),
    )
    faces = [r for r in seen if r is not None]
    assert summary["faces"] == len(faces) >= 2 * ALBEDO_STRIDE
    assert len(calls) == sum(not r.albedo_reused for r in faces) == -(-len(faces) // ALBEDO_STRIDE)
    albedos = [r.params.albedo for r in faces]
    assert all(a.shape == albedos[0].shape for a in albedos)  # every frame: the full-size running mean
    assert np.isfinite(torch.stack(albedos).numpy()).all()
