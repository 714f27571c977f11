import pytest
import torch

from engine.cli import main
from engine.crop import crop_image, crop_params_from_landmarks, image_to_crop
from engine.reconstruct.reconstructor import CROP_SIZE, Reconstructor, image_tensor


@pytest.fixture(scope="module")
def fit_reconstructor():
    return Reconstructor(method="fit")


def test_batched_fit_matches_one_by_one(fit_reconstructor, sample_image):
    face = fit_reconstructor.detector.detect(sample_image)[0]
    box = crop_params_from_landmarks(face.landmarks)
    crop = image_tensor(crop_image(sample_image, box, CROP_SIZE))
    lm = torch.as_tensor(image_to_crop(face.landmarks, box, CROP_SIZE), dtype=torch.float32)[None]
    shifted = torch.roll(crop, 4, dims=-1)
    lm_shifted = lm + torch.tensor([4.0, 0.0])
    both = fit_reconstructor.estimate(torch.cat([crop, shifted]), torch.cat([lm, lm_shifted]))
    one = fit_reconstructor.estimate(shifted, lm_shifted)
    assert both.albedo.shape[0] == 2
    assert torch.allclose(both.select(1).rotation, one.rotation, atol=1e-4)
    assert torch.allclose(both.select(1).light, one.light, atol=2e-2)


def test_fit_light_is_colourless_and_albedo_in_range(fit_reconstructor, sample_image):
    recon = fit_reconstructor.reconstruct(sample_image)
    light = recon.params.light[0]
    assert torch.allclose(light[:, 0], light[:, 1]) and torch.allclose(light[:, 0], light[:, 2])
    assert 0 <= float(recon.params.albedo.min()) and float(recon.params.albedo.max()) <= 1


def test_unknown_method_is_refused():
    with pytest.raises(ValueError, match="unknown method"):
        Reconstructor(method="magic")


@pytest.mark.parametrize("command", ["train", "finetune", "eval", "bench"])
def test_delegated_commands_have_their_own_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith("usage:")


def test_delight_falls_back_to_ambient_when_the_fit_goes_wild():
    from engine.render.delight import delight
    from engine.sh import SH_CONST

    gen = torch.Generator().manual_seed(0)
    normals = torch.nn.functional.normalize(torch.randn(1, 3, 16, 16, generator=gen), dim=1)
    texture = torch.zeros(1, 3, 16, 16)  # a black background caught by the unwrap
    texture[..., :2, :2] = 1.0
    visibility = torch.zeros(1, 1, 16, 16)
    visibility[..., :4, :4] = 1.0
    albedo, light = delight(texture, normals, visibility)
    assert torch.isfinite(light).all() and torch.isfinite(albedo).all()
    assert torch.allclose(light[0, 0], torch.full((3,), 1 / SH_CONST[0]))
    assert light[0, 1:].abs().max() == 0
