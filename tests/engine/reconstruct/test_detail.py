import torch

from engine.reconstruct.detail import add_image_detail, low_pass
from engine.render import Renderer
from tests.conftest import random_params


def test_low_pass_keeps_constants_and_smooths_noise():
    flat = torch.full((1, 3, 32, 32), 0.4)
    assert torch.allclose(low_pass(flat, 8), flat, atol=1e-6)
    noise = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    assert low_pass(noise, 8).std() < 0.5 * noise.std()


def test_detail_comes_from_the_photo_and_keeps_the_base_elsewhere(face_model):
    params = random_params(face_model, batch=1, seed=4, tex=64)
    fine = torch.rand(1, 3, 256, 256, generator=torch.Generator().manual_seed(1)) * 0.4 + 0.4
    _, cam, ndc = params.geometry(face_model)
    photo = Renderer(face_model.faces, face_model.uvs).render(cam, ndc, fine, params.light, 256).image
    detailed, visibility = add_image_detail(params, photo, face_model, 256)
    assert detailed.albedo.shape == (1, 3, 256, 256)
    seen, unseen = visibility[0, 0] > 0.6, visibility[0, 0] == 0
    base = torch.nn.functional.interpolate(params.albedo, size=256, mode="bilinear", align_corners=False)
    high_pass = lambda t: t - low_pass(t, 64)  # noqa: E731
    # Where the photo sees the face, the texture's fine structure follows the photo's ...
    corr = torch.corrcoef(torch.stack([high_pass(detailed.albedo)[0, 0][seen], high_pass(fine)[0, 0][seen]]))[
        0, 1
    ]
    assert corr > 0.5
    # ... and where it does not, the network's albedo stays as it was.
    assert torch.allclose(detailed.albedo[0][:, unseen], base[0][:, unseen], atol=1e-5)
