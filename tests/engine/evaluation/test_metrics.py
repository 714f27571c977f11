"""Accuracy metrics on hand-made cases: known answers, invariances, masks."""

from __future__ import annotations

import math

import pytest
import torch

from engine.evaluation import metrics


def _depth(seed: int = 0, batch: int = 2, size: int = 16) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 1, size, size, generator=gen) * 0.5 - 0.25  # NDC-like depths


def _normals(batch: int = 2, size: int = 16, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    n = torch.randn(batch, 3, size, size, generator=gen)
    n[:, 2] = n[:, 2].abs() + 1.0  # facing the camera, like a face
    return torch.nn.functional.normalize(n, dim=1)


def _full(batch: int = 2, size: int = 16) -> torch.Tensor:
    return torch.ones(batch, 1, size, size)


def test_identical_maps_score_zero():
    depth, normals, mask = _depth(), _normals(), _full()
    albedo = torch.rand(2, 3, 8, 8)
    assert torch.allclose(metrics.side(depth, depth, mask), torch.zeros(2, dtype=torch.float64))
    dist = metrics.ndc_depth_to_distance(depth)
    assert torch.allclose(metrics.side(dist, dist, mask, log=True), torch.zeros(2, dtype=torch.float64))
    assert metrics.mad(normals, normals, mask).abs().max() < 1e-4  # acos near 1 is steep
    assert torch.allclose(
        metrics.albedo_error(albedo, albedo, _full(2, 8)), torch.zeros(2, dtype=torch.float64), atol=1e-12
    )
    lm = torch.rand(2, 68, 2) * 100
    assert torch.allclose(metrics.landmark_nme(lm, lm), torch.zeros(2, dtype=torch.float64))


def test_side_is_invariant_to_offset_and_log_side_to_scale():
    depth, mask = _depth(), _full()
    # linear depth: an offset (weak perspective's unknown z) changes nothing
    assert metrics.side(depth + 3.0, depth, mask).max() < 1e-6  # float32 inputs
    # log depth (Unsup3D): positive distances scaled by a constant change nothing
    dist = metrics.ndc_depth_to_distance(depth)
    assert metrics.side(dist * 1.7, dist, mask, log=True).max() < 1e-9  # float64 distances
    # ... but a scaled relief is an error in the linear form
    assert metrics.side(depth * 1.5, depth, mask).min() > 0.01


def test_side_known_value_and_unsup3d_scale():
    gt = torch.zeros(1, 1, 4, 4)
    pred = gt.clone()
    pred[..., :2, :] = 0.1  # half the pixels 0.1 higher: the difference has std 0.05
    assert metrics.side(pred, gt, _full(1, 4)).item() == pytest.approx(0.05)
    # on the distances a 10-degree camera sees, the log SIDE is the NDC one times tan(5 deg)
    log_side = metrics.side(
        metrics.ndc_depth_to_distance(pred), metrics.ndc_depth_to_distance(gt), _full(1, 4), log=True
    )
    assert log_side.item() == pytest.approx(0.05 * math.tan(math.radians(5)), rel=1e-2)


def test_side_uses_only_the_mask_and_empty_mask_is_nan():
    gt, pred = torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 4)
    pred[..., 0, 0] = 100.0  # outside the mask below
    mask = torch.ones(1, 1, 4, 4)
    mask[..., 0, 0] = 0
    assert metrics.side(pred, gt, mask).item() == pytest.approx(0.0)
    assert math.isnan(metrics.side(pred, gt, torch.zeros(1, 1, 4, 4)).item())
    assert math.isnan(metrics.mad(_normals(1, 4), _normals(1, 4), torch.zeros(1, 1, 4, 4)).item())


def test_log_side_rejects_non_positive_depths():
    with pytest.raises(ValueError):
        metrics.side(torch.full((1, 1, 2, 2), -1.0), torch.ones(1, 1, 2, 2), _full(1, 2), log=True)


@pytest.mark.parametrize("degrees", [5.0, 30.0, 90.0])
def test_mad_of_a_known_rotation(degrees):
    normals = _normals(2, 8)
    # rotate every normal about the axis perpendicular to it (here: build a per-pixel rotation in the
    # plane of n and a fixed direction) -> each turns by exactly `degrees`
    axis = torch.tensor([0.0, 1.0, 0.0]).view(1, 3, 1, 1)
    perp = torch.nn.functional.normalize(torch.cross(axis.expand_as(normals), normals, dim=1), dim=1)
    t = math.radians(degrees)
    rotated = normals * math.cos(t) + perp * math.sin(t)
    assert metrics.mad(rotated, normals, _full(2, 8)).numpy() == pytest.approx([degrees, degrees], abs=1e-3)


def test_mad_of_a_global_rotation_about_the_view_axis():
    normals = torch.zeros(1, 3, 4, 4)
    normals[:, 0] = 1.0  # all pointing +x
    t = math.radians(20)
    rotated = torch.zeros_like(normals)
    rotated[:, 0], rotated[:, 1] = math.cos(t), math.sin(t)
    assert metrics.mad(rotated, normals, _full(1, 4)).item() == pytest.approx(20.0, abs=1e-4)


def test_albedo_error_ignores_a_colour_scale():
    gen = torch.Generator().manual_seed(3)
    gt = torch.rand(2, 3, 8, 8, generator=gen) * 0.8 + 0.1
    tint = torch.tensor([0.6, 1.3, 0.9]).view(1, 3, 1, 1)
    mask = _full(2, 8)
    assert metrics.albedo_error(gt * tint, gt, mask).max() < 1e-6  # float32 inputs
    assert metrics.albedo_error(gt * 0.5, gt, mask, per_channel=False).max() < 1e-6
    # a tint is an error when only one global scale is allowed
    assert metrics.albedo_error(gt * tint, gt, mask, per_channel=False).min() > 0.01
    # and a genuinely different map is an error either way
    other = torch.rand(2, 3, 8, 8, generator=gen)
    assert metrics.albedo_error(other, gt, mask).min() > 0.05


def test_colour_scale_is_least_squares():
    pred = torch.tensor([1.0, 2.0]).view(1, 1, 1, 2).expand(1, 3, 1, 2)
    gt = torch.tensor([2.0, 3.0]).view(1, 1, 1, 2).expand(1, 3, 1, 2)
    k = metrics.colour_scale(pred, gt, torch.ones(1, 1, 1, 2))
    assert k[0].numpy() == pytest.approx([8 / 5] * 3)  # (1*2 + 2*3) / (1 + 4)


def test_nme_normalised_by_outer_eye_corners():
    gt = torch.zeros(1, 68, 2)
    gt[0, :, 0] = torch.linspace(0, 100, 68)
    gt[0, 36] = torch.tensor([30.0, 50.0])
    gt[0, 45] = torch.tensor([70.0, 50.0])  # inter-ocular distance 40
    assert metrics.inter_ocular(gt).item() == pytest.approx(40.0)
    pred = gt + torch.tensor([3.0, 4.0])  # every point 5 px off
    assert metrics.landmark_nme(pred, gt).item() == pytest.approx(5 / 40)
    assert metrics.landmark_nme(pred[0], gt[0]).item() == pytest.approx(5 / 40)  # unbatched


def test_erode_one_pixel():
    mask = torch.zeros(1, 1, 7, 7)
    mask[..., 2:5, 2:5] = 1
    eroded = metrics.erode(mask)
    assert eroded.sum().item() == 1 and eroded[0, 0, 3, 3] == 1
    assert metrics.erode(torch.ones(1, 1, 5, 5)).sum().item() == 25  # image borders are not edges


def test_shading_in_albedo_is_one_when_baked_in_and_zero_when_not():
    gen = torch.Generator().manual_seed(0)
    truth = 0.3 + 0.5 * torch.rand(2, 3, 16, 16, generator=gen)
    shading = 0.4 + torch.linspace(0, 1.2, 16).reshape(1, 1, 1, 16).expand(2, 3, 16, 16)
    mask = torch.ones(2, 1, 16, 16)
    baked = metrics.shading_in_albedo(truth * shading, truth, shading, mask)
    clean = metrics.shading_in_albedo(0.9 * truth, truth, shading, mask)  # a colour scale: no shading
    half = metrics.shading_in_albedo(truth * shading.sqrt(), truth, shading, mask)
    assert torch.allclose(baked, torch.ones(2, dtype=torch.float64))
    assert torch.allclose(clean, torch.zeros(2, dtype=torch.float64), atol=1e-6)
    assert torch.allclose(half, torch.full((2,), 0.5, dtype=torch.float64))
    flat = metrics.shading_in_albedo(truth, truth, torch.ones_like(truth), mask)
    assert torch.isnan(flat).all()  # under a flat light the question has no answer
