"""engine.reconstruct.editing: the maths behind the app's sliders (light, reflectance, pose, views, lit texture)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from engine.lighting import PRESETS, LightSettings, settings_to_sh
from engine.reconstruct.editing import (
    Edits,
    FaceEditor,
    blend_albedo,
    compact_params,
    float_params,
    light_of,
    light_to_settings,
    posed,
    rotation_degrees,
    texture_view,
    uv_normals,
)
from engine.reconstruct.sequence import SequenceFrame, export_sequence
from engine.render import Renderer, sample_texture
from tests.conftest import random_params

SIZE = 96


@pytest.fixture(scope="module")
def renderer(face_model):
    return Renderer(face_model.faces, face_model.uvs)


@pytest.fixture(scope="module")
def params(face_model):
    p = random_params(face_model, batch=1, seed=3, tex=64)
    gen = torch.Generator().manual_seed(1)
    return p.replace(
        albedo=(p.albedo + 0.2 * torch.rand(p.albedo.shape, generator=gen)).clamp(0, 1),
        rotation=torch.tensor([[0.05, 0.2, -0.03]]),
    )


@pytest.fixture(scope="module")
def crop():
    gen = torch.Generator().manual_seed(2)
    return torch.rand(1, 3, SIZE, SIZE, generator=gen)


@pytest.fixture
def editor(face_model, renderer, params, crop):
    return FaceEditor(face_model, renderer, params, crop, size=SIZE)


@pytest.mark.parametrize(
    "settings",
    [
        LightSettings(40, 20, 0.7, 0.4, (1.0, 0.8, 0.6)),
        LightSettings(-120, -35, 1.3, 0.05),
        *PRESETS.values(),
    ],
)
def test_light_settings_round_trip(settings):
    back = light_to_settings(settings_to_sh(settings))
    assert back.intensity == pytest.approx(settings.intensity, abs=1e-4)
    assert back.ambient == pytest.approx(settings.ambient, abs=1e-4)
    assert back.elevation_deg == pytest.approx(settings.elevation_deg, abs=1e-3)
    if abs(settings.elevation_deg) < 89:
        assert (back.azimuth_deg - settings.azimuth_deg + 180) % 360 - 180 == pytest.approx(0, abs=1e-3)
    np.testing.assert_allclose(back.color, np.array(settings.color) / max(settings.color), atol=1e-3)
    torch.testing.assert_close(
        settings_to_sh(back),
        settings_to_sh(
            LightSettings(
                settings.azimuth_deg,
                settings.elevation_deg,
                settings.intensity * max(settings.color),
                settings.ambient * max(settings.color),
                tuple(np.array(settings.color) / max(settings.color)),
            )
        ),
        atol=1e-4,
        rtol=1e-4,
    )


def test_light_of_picks_estimated_settings_or_borrowed(params):
    assert light_of(Edits(), params.light) is params.light
    settings = LightSettings(10, 10, 0.5, 0.5)
    torch.testing.assert_close(light_of(Edits(light=settings), params.light), settings_to_sh(settings))
    borrowed = torch.rand(1, 9, 3)
    torch.testing.assert_close(light_of(Edits(light=borrowed), params.light), borrowed)


def test_blend_albedo_swaps_blends_and_resizes():
    own = torch.zeros(1, 3, 32, 32)
    other = torch.ones(1, 3, 64, 64)
    assert blend_albedo(own, None, 1.0) is own
    assert blend_albedo(own, other, 0.0) is own
    torch.testing.assert_close(blend_albedo(own, other, 1.0), torch.ones(1, 3, 32, 32))
    torch.testing.assert_close(blend_albedo(own, other, 0.25), torch.full((1, 3, 32, 32), 0.25))
    assert blend_albedo(own, other, 7).max() == 1.0  # clamped to a swap


def test_posed_sets_the_rotation_in_degrees(params):
    turned = posed(params, (10.0, -30.0, 5.0))
    np.testing.assert_allclose(rotation_degrees(turned), (10.0, -30.0, 5.0), atol=1e-4)
    assert posed(params, None) is params
    assert turned.identity is params.identity


def test_default_edits_reproduce_the_renderer(editor, face_model, renderer, params, crop):
    """No edit = the face as reconstructed, drawn over its crop exactly as the engine renders it."""
    frame = editor.frame(Edits())
    _, cam, ndc = params.geometry(face_model)
    reference = renderer.render(cam, ndc, params.albedo, params.light, SIZE, background=crop).image
    expected = (reference[0].clamp(0, 1) * 255 + 0.5).byte().permute(1, 2, 0).numpy()
    assert np.abs(frame.image.astype(int) - expected.astype(int)).max() <= 1
    assert frame.texture.shape == (64, 64, 3)
    assert frame.vertices.shape == (face_model.n_vertices, 3)
    assert frame.pose_changed


def test_light_moves_change_both_images_without_rasterising(editor):
    first = editor.frame(Edits())
    cache = editor._cache
    moved = editor.frame(Edits(light=LightSettings(80, 10, 1.2, 0.1)))
    assert editor._cache is cache and not moved.pose_changed
    assert np.abs(moved.image.astype(int) - first.image.astype(int)).mean() > 1
    assert np.abs(moved.texture.astype(int) - first.texture.astype(int)).mean() > 1
    np.testing.assert_array_equal(moved.vertices, first.vertices)


def test_pose_moves_turn_the_mesh(editor):
    first = editor.frame(Edits())
    turned = editor.frame(Edits(rotation=(0.0, 30.0, 0.0)))
    assert turned.pose_changed
    assert np.abs(turned.vertices - first.vertices).max() > 0.5  # cm
    again = editor.frame(Edits(rotation=(0.0, 30.0, 0.0), light=LightSettings(0, 0, 0.5, 0.5)))
    assert not again.pose_changed
    back = editor.frame(Edits())
    np.testing.assert_allclose(back.vertices, first.vertices, atol=1e-5)


def test_views_and_swap(editor, params):
    images = {view: editor.frame(Edits(view=view)) for view in ("render", "albedo", "shading", "normals")}
    for a in images:
        for b in images:
            if a < b:
                assert np.abs(images[a].image.astype(int) - images[b].image.astype(int)).mean() > 1, (a, b)
    albedo_tex = images["albedo"].texture.astype(np.float32) / 255
    np.testing.assert_allclose(albedo_tex, params.albedo[0].permute(1, 2, 0).numpy(), atol=1 / 255 + 1e-6)
    other = torch.full_like(params.albedo, 0.2)
    swapped = editor.frame(Edits(other_albedo=other, blend=1.0, view="albedo"))
    assert np.abs(swapped.texture.astype(int) - round(0.2 * 255)).max() <= 1
    with pytest.raises(ValueError):
        editor.frame(Edits(view="x-ray"))


def test_shading_view_shows_the_estimated_light_as_shading_png_does_and_follows_light_edits(editor, params):
    """A bright estimated light (shading well above 1) would clip to flat white; the view scales it as
    the exported shading.png does, and a light edit still changes its brightness."""
    bright = FaceEditor(
        editor.model, editor.renderer, params.replace(light=params.light * 2.5), editor.crop, SIZE
    )
    frame = bright.frame(Edits(view="shading", composite=False))
    mask = bright._mask_np() > 0
    shown = frame.image[mask].astype(int)
    exported = bright.maps(Edits())["shading"][mask].astype(int)
    assert np.abs(shown - exported).max() <= 1
    assert (shown.mean(-1) >= 254).mean() < 0.05  # not clipped flat
    dimmer = bright.frame(Edits(view="shading", light=params.light * 1.25, composite=False)).image[mask]
    assert dimmer.mean() < shown.mean() * 0.6


def test_viewport_texture_matches_the_2d_render(editor, face_model):
    """The lit UV texture, looked up at each pixel's UV, is the 2D re-render: the 3D view shows the
    same relighting (texel normals and pixel normals are interpolated differently, hence a tolerance)."""
    edits = Edits(light=LightSettings(50, 30, 1.0, 0.3), composite=False)
    frame = editor.frame(edits)
    cache = editor._cache
    texture = torch.from_numpy(frame.texture).permute(2, 0, 1)[None].float() / 255
    looked_up = sample_texture(texture, cache.uv) * cache.mask
    image = torch.from_numpy(frame.image).permute(2, 0, 1)[None].float() / 255 * cache.mask
    inner = torch.nn.functional.max_pool2d(1 - cache.mask, 5, 1, 2) == 0  # away from the silhouette
    diff = (looked_up - image).abs()[inner.expand_as(image)]
    assert diff.mean() < 0.02, diff.mean()


def test_uv_normals_are_unit_and_face_the_camera(face_model, params):
    _, cam, _ = params.replace(rotation=torch.zeros(1, 3)).geometry(face_model)
    normals = uv_normals(face_model, cam, 64)
    length = normals.norm(dim=1)
    covered = length > 0.5
    assert covered.float().mean() > 0.3
    assert torch.allclose(length[covered], torch.ones_like(length[covered]), atol=1e-4)
    assert normals[:, 2][covered].mean() > 0.5  # a frontal face's normals point at the viewer (+z)
    shading = texture_view(
        torch.ones(1, 3, 64, 64), normals, settings_to_sh(LightSettings(0, 0, 1, 0)), "shading"
    )
    assert shading.shape == (1, 3, 64, 64)


def test_mesh_and_maps(editor, face_model):
    mesh = editor.mesh(Edits())
    assert mesh.vertices.shape == (face_model.n_vertices, 3) and mesh.texture.dtype == np.uint8
    baked = editor.mesh(Edits(light=LightSettings(90, 0, 1.5, 0.0)), bake_light=True)
    assert np.abs(baked.texture.astype(int) - mesh.texture.astype(int)).mean() > 1
    maps = editor.maps(Edits())
    assert set(maps) == {"render", "albedo", "shading", "normals", "depth", "texture"}
    assert all(m.shape[:2] == (SIZE, SIZE) for k, m in maps.items() if k != "texture")


def test_compact_params_and_sequence_frames_round_trip(params, tmp_path):
    compact = compact_params(params)
    assert compact.albedo.dtype == torch.uint8
    torch.testing.assert_close(float_params(compact).albedo, params.albedo, atol=1 / 255, rtol=0)
    frame = SequenceFrame(7, np.zeros((SIZE, SIZE, 3), np.uint8), np.ones((68, 2), np.float32), compact)
    loaded = SequenceFrame.load(frame.save(tmp_path / "frame.npz"))
    assert loaded.index == 7 and loaded.crop.shape == (SIZE, SIZE, 3)
    for name, value in compact.fields().items():
        torch.testing.assert_close(getattr(loaded.params, name), value)


def test_export_sequence(face_model, renderer, params, tmp_path):
    from engine.io.video import probe

    frames = [
        SequenceFrame(
            i,
            np.full((SIZE, SIZE, 3), 40 * i, np.uint8),
            np.zeros((68, 2), np.float32),
            compact_params(params.replace(rotation=params.rotation + 0.05 * i)),
        )
        for i in range(3)
    ]
    written = export_sequence(
        face_model,
        renderer,
        frames,
        Edits(light=LightSettings(30, 0, 0.8, 0.4)),
        tmp_path,
        fps=5,
        mesh_format="ply",
    )
    assert written[0].name == "sequence.mp4" and probe(written[0]).frames == 3
    assert sorted(p.name for p in (tmp_path / "meshes").iterdir()) == [f"frame_{i:06d}.ply" for i in range(3)]
    assert math.isclose(probe(written[0]).fps, 5, rel_tol=0.01)
