"""The CEST chain: shapes, the untrained starting point, view alignment, save/load."""

import time

import pytest
import torch

from engine.camera import project, to_camera
from engine.errors import WeightsError
from engine.model.chain import CestConfig, CestModel, align_image, config_mismatch
from engine.render import Renderer
from engine.sh import ambient_light

SMALL = dict(image_size=64, texture_size=32, width=8, features=32)


@pytest.mark.parametrize("conditional", [True, False])
def test_chain_outputs_face_params(face_model, conditional):
    model = CestModel(CestConfig(conditional=conditional, **SMALL), face_model).eval()
    with torch.no_grad():
        out = model.estimate(torch.rand(3, 3, 64, 64))
    p = out.params
    assert p.rotation.shape == (3, 3) and p.translation.shape == (3, 2) and p.scale.shape == (3, 1)
    assert p.identity.shape == (3, face_model.n_identity)
    assert p.expression.shape == (3, face_model.n_expression)
    assert p.albedo.shape == (3, 3, 32, 32) and p.light.shape == (3, 9, 3)
    assert (out.texture is not None) == conditional and (out.aligned is not None) == conditional


def test_untrained_chain_predicts_the_initial_face(face_model):
    config = CestConfig(**SMALL, translation_init=(0.0, 0.05))
    with torch.no_grad():
        p = CestModel(config, face_model).eval()(torch.rand(2, 3, 64, 64))
    assert torch.allclose(p.rotation, torch.zeros(2, 3))
    assert torch.allclose(p.translation, torch.tensor([[0.0, 0.05]] * 2))
    assert torch.allclose(p.scale, torch.full((2, 1), config.scale_init))
    assert torch.allclose(p.identity, torch.zeros_like(p.identity))
    assert (p.expression < 0.1).all() and (p.expression > 0).all()
    assert torch.allclose(p.albedo, torch.full_like(p.albedo, 0.5))
    assert torch.allclose(p.light, ambient_light(2))


def test_wrong_input_size_is_a_clear_error(face_model):
    with pytest.raises(ValueError, match="64x64"):
        CestModel(CestConfig(**SMALL), face_model)(torch.rand(1, 3, 32, 32))


def test_align_image_undoes_roll_scale_translation(face_model):
    """A face rendered at (roll, s, t) and aligned matches the face rendered upright, centred, at s0."""
    renderer = Renderer(face_model.faces, face_model.uvs)
    verts = face_model.mean[None]
    s0 = 0.07

    def mask(roll, scale, tx, ty):
        cam = to_camera(verts, torch.tensor([[0.1, 0.2, roll]]))
        ndc = project(cam, torch.tensor([[scale]]), torch.tensor([[tx, ty]]))
        return renderer.rasterize(ndc, 96).mask

    moved = mask(0.4, 0.085, 0.12, -0.08)
    aligned = align_image(
        moved, torch.tensor([[0.12, -0.08]]), torch.tensor([[0.085]]), torch.tensor([0.4]), s0
    )
    upright = mask(0.0, s0, 0.0, 0.0)
    inter = ((aligned > 0.5) & (upright > 0.5)).sum()
    union = ((aligned > 0.5) | (upright > 0.5)).sum()
    assert inter / union > 0.95


def test_save_load_round_trip(tmp_path, face_model):
    model = CestModel(CestConfig(**SMALL), face_model).eval()
    torch.nn.init.normal_(model.viewpoint.head.weight, std=0.01)
    path = tmp_path / "w.safetensors"
    model.save(path)
    start = time.perf_counter()
    loaded = CestModel.load(path, face_model=face_model)
    assert time.perf_counter() - start < 1.0
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        a, b = model(x), loaded(x)
    for name, value in a.fields().items():
        assert torch.equal(value, b.fields()[name]), name
    assert not path.read_bytes().startswith(b"\x80")  # not a pickle


def test_half_precision_weights_load_close(tmp_path, face_model):
    model = CestModel(CestConfig(**SMALL), face_model).eval()
    model.save(tmp_path / "full.safetensors")
    model.save(tmp_path / "half.safetensors", half=True)
    assert (tmp_path / "half.safetensors").stat().st_size < 0.6 * (
        tmp_path / "full.safetensors"
    ).stat().st_size
    loaded = CestModel.load(tmp_path / "half.safetensors", face_model=face_model)
    assert next(loaded.parameters()).dtype == torch.float32
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(model(x).albedo, loaded(x).albedo, atol=2e-3)


def test_load_names_the_config_mismatch(tmp_path, face_model):
    path = tmp_path / "w.safetensors"
    CestModel(CestConfig(**SMALL), face_model).save(path)
    other = CestConfig(**{**SMALL, "width": 16, "conditional": False})
    with pytest.raises(WeightsError, match="width: expected 16, file has 8") as err:
        CestModel.load(path, other, face_model)
    assert "conditional" in str(err.value)
    assert config_mismatch(CestConfig(**SMALL), CestConfig(**SMALL)) == ""


def test_load_rejects_foreign_files(tmp_path, face_model):
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a weights file")
    with pytest.raises(WeightsError, match="not a safetensors"):
        CestModel.load(junk, face_model=face_model)
    with pytest.raises(WeightsError, match="no weights file"):
        CestModel.load(tmp_path / "missing.safetensors", face_model=face_model)


def test_a_delit_unwrap_is_what_the_reflectance_estimator_sees(face_model):
    from engine.render import vertex_normals
    from engine.render.delight import delight
    from engine.render.uv import vertex_attrs_to_uv

    config = CestConfig(image_size=64, texture_size=32, width=8, features=32, delit_unwrap=True)
    model = CestModel(config, face_model).eval()
    seen: list[torch.Tensor] = []
    model.reflectance.register_forward_hook(lambda module, args, out: seen.append(args[1]))
    image = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        out = model.estimate(image)
    g = model.estimate_geometry(image)
    _, cam, _ = g.params().geometry(face_model)
    assert out.texture is not None and out.visibility is not None

    uv_normals = torch.nn.functional.normalize(
        vertex_attrs_to_uv(face_model, vertex_normals(cam, face_model.faces), 32), dim=1
    )
    expected = delight(out.texture, uv_normals, out.visibility)[0]
    assert torch.allclose(seen[0], expected, atol=1e-5)
    assert not torch.allclose(seen[0], out.texture, atol=1e-3)  # the light divided out, not the unwrap
