import torch

from engine.render import Renderer
from engine.render.uv import symmetric_fill, unwrap_texture, uv_layout, vertex_attrs_to_uv
from tests.conftest import random_params

TEXTURE_SIZE = 256


def test_uv_layout_covers_most_of_the_texture(face_model):
    _, bary, covered = uv_layout(face_model, 128)
    assert 0.6 < covered.float().mean() < 0.98
    sums = bary.sum(-1)[covered]
    assert torch.allclose(sums, torch.ones_like(sums), atol=1e-4)


def test_vertex_uvs_map_back_to_themselves(face_model):
    uv = vertex_attrs_to_uv(face_model, face_model.uvs[None], 128)  # (1, 2, T, T)
    _, _, covered = uv_layout(face_model, 128)
    rows, cols = torch.nonzero(covered, as_tuple=True)
    expected_u = (cols.float() + 0.5) / 128
    expected_v = 1 - (rows.float() + 0.5) / 128
    assert (uv[0, 0][covered] - expected_u).abs().max() < 1e-3
    assert (uv[0, 1][covered] - expected_v).abs().max() < 1e-3


def test_unwrapping_a_render_recovers_its_albedo(face_model):
    params = random_params(face_model, batch=1, seed=2, tex=TEXTURE_SIZE)
    gen = torch.Generator().manual_seed(1)
    albedo = torch.nn.functional.interpolate(
        torch.rand(1, 3, 8, 8, generator=gen), size=TEXTURE_SIZE, mode="bilinear", align_corners=False
    )
    params = params.replace(albedo=albedo, light=torch.zeros(1, 9, 3))
    params.light[:, 0] = 1 / 0.2820948  # ambient shading of 1: the image is the albedo
    _, cam, ndc = params.geometry(face_model)
    image = Renderer(face_model.faces, face_model.uvs).render(cam, ndc, albedo, params.light, 256).image
    texture, visibility = unwrap_texture(image, ndc, cam, face_model, TEXTURE_SIZE)
    good = visibility[0, 0] > 0.5
    assert good.float().mean() > 0.3
    error = (texture[0][:, good] - albedo[0][:, good]).abs().mean()
    assert error < 0.03


def test_flip_of_the_texture_is_the_mirror_face(face_model):
    """Texel (u, v) and (1-u, v) hold mirror-twin surface points: the CEST symmetry is a flip."""
    mirrored_x = vertex_attrs_to_uv(face_model, face_model.mean[None, :, :1], 128)
    _, _, covered = uv_layout(face_model, 128)
    both = covered & covered.flip(-1)
    assert (mirrored_x[0, 0] + mirrored_x[0, 0].flip(-1))[both].abs().max() < 0.15  # cm


def test_symmetric_fill_takes_the_visible_twin():
    texture = torch.zeros(1, 3, 4, 4)
    texture[..., :2] = 1.0
    visibility = torch.zeros(1, 1, 4, 4)
    visibility[..., :2] = 1.0
    filled = symmetric_fill(texture, visibility)
    assert torch.allclose(filled, torch.ones_like(filled))
