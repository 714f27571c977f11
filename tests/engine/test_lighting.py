import torch

from engine.lighting import PRESETS, LightSettings, light_direction, settings_to_sh, shading_of


def test_directional_light_follows_clamped_cosine():
    light = settings_to_sh(LightSettings(40, 10, 1.0, 0.0))[0]
    toward = light_direction(40, 10)
    assert abs(float(shading_of(light, toward)[0]) - 1.0) < 0.1
    assert float(shading_of(light, -toward)[0]) < 0.1  # the far side is dark
    side = torch.linalg.cross(toward, torch.tensor([0.0, 1.0, 0.0]))
    side = side / side.norm()
    assert abs(float(shading_of(light, side)[0]) - 0.0) < 0.2


def test_ambient_and_colour():
    light = settings_to_sh(LightSettings(0, 0, 0.0, 0.7, (1.0, 0.5, 0.25)))[0]
    shading = shading_of(light, torch.tensor([0.3, 0.2, 0.93]) / 1.0)
    assert torch.allclose(shading, torch.tensor([0.7, 0.35, 0.175]), atol=1e-4)


def test_azimuth_moves_the_light_to_the_right():
    assert light_direction(90, 0)[0] > 0.99
    assert light_direction(0, 90)[1] > 0.99


def test_presets_are_valid():
    for settings in PRESETS.values():
        assert settings_to_sh(settings).shape == (1, 9, 3)
