"""The CEST chain conditioned on the landmark fit: it starts at the fit and needs landmarks."""

from __future__ import annotations

import pytest
import torch

from engine.model.chain import CestConfig, CestModel
from engine.model.fit import fit_landmarks


@pytest.fixture(scope="module")
def small_model(face_model):
    torch.manual_seed(0)
    config = CestConfig(image_size=64, texture_size=32, width=8, features=32, occlusion=False, fit_prior=True)
    return CestModel(config, face_model).eval()


def _landmarks(face_model, batch: int = 2) -> torch.Tensor:
    from engine.params import FaceParams

    g = torch.Generator().manual_seed(1)
    params = FaceParams(
        rotation=torch.randn(batch, 3, generator=g) * 0.2,
        translation=torch.randn(batch, 2, generator=g) * 0.05,
        scale=torch.full((batch, 1), 0.1),
        identity=torch.randn(batch, face_model.n_identity, generator=g),
        expression=torch.zeros(batch, face_model.n_expression),
        albedo=None,
        light=None,
    )
    _, _, ndc = params.geometry(face_model)
    return face_model.landmark_vertices(ndc, params.rotation)[..., :2]


def test_an_untrained_chain_with_the_fit_prior_returns_the_fit(small_model, face_model):
    landmarks = _landmarks(face_model)
    image = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        params = small_model(image, landmarks)
    fit = fit_landmarks(face_model, landmarks)
    torch.testing.assert_close(params.rotation, fit.rotation)
    torch.testing.assert_close(params.translation, fit.translation)
    torch.testing.assert_close(params.scale, fit.scale)
    torch.testing.assert_close(params.identity, fit.identity)
    # a fitted 0 starts where the chain without the fit starts; the rest is the fit's value
    floor = torch.sigmoid(torch.tensor(-3.0))
    torch.testing.assert_close(
        params.expression, fit.expression.clamp(floor, 1 - floor), atol=1e-4, rtol=1e-4
    )


def test_the_fit_prior_needs_landmarks(small_model):
    with pytest.raises(ValueError, match="landmark fit"):
        small_model(torch.rand(1, 3, 64, 64))


def test_gradients_reach_the_viewpoint_and_shape_heads(small_model, face_model):
    small_model.train()
    params = small_model(torch.rand(2, 3, 64, 64), _landmarks(face_model))
    (params.rotation.sum() + params.identity.sum()).backward()
    assert small_model.viewpoint.head.weight.grad.abs().sum() > 0
    assert small_model.shape.head.weight.grad.abs().sum() > 0
    small_model.zero_grad()
    small_model.eval()


def test_init_script_zeroes_the_heads_and_keeps_the_encoders(tmp_path, face_model):
    import importlib.util
    from pathlib import Path

    src = tmp_path / "old.safetensors"
    torch.manual_seed(0)
    old = CestModel(
        CestConfig(image_size=64, texture_size=32, width=8, features=32, occlusion=False), face_model
    )
    with torch.no_grad():
        old.viewpoint.head.weight.normal_()
    old.save(src)
    spec = importlib.util.spec_from_file_location(
        "fpi", Path(__file__).resolve().parents[3] / "scripts" / "fit_prior_init.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(str(src), str(tmp_path / "new.safetensors"))
    new = CestModel.load(tmp_path / "new.safetensors")
    assert new.config.fit_prior and new.viewpoint.head.weight.abs().sum() == 0
    torch.testing.assert_close(new.reflectance.state_dict(), old.reflectance.state_dict())
