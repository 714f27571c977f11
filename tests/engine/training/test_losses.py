"""CEST losses on hand-made cases."""

import pytest
import torch

from engine.params import FaceParams
from engine.render import Renderer
from engine.sh import ambient_light
from engine.training.losses import (
    LossWeights,
    albedo_contrast,
    cest_losses,
    coefficient_loss,
    identity_contrast,
    landmark_loss,
    light_prior,
    photometric_loss,
    render_params,
    swap_partners,
    symmetry_albedo,
)

SIZE = 64


@pytest.fixture(scope="module")
def setup(face_model):
    return face_model, Renderer(face_model.faces, face_model.uvs)


def make_params(batch: int, albedo: torch.Tensor | None = None, seed: int = 0) -> FaceParams:
    g = torch.Generator().manual_seed(seed)
    return FaceParams(
        rotation=torch.randn(batch, 3, generator=g) * 0.1,
        translation=torch.randn(batch, 2, generator=g) * 0.05,
        scale=torch.full((batch, 1), 0.075),
        identity=torch.randn(batch, 80, generator=g) * 0.5,
        expression=torch.rand(batch, 53, generator=g) * 0.2,
        albedo=albedo if albedo is not None else torch.rand(batch, 3, 16, 16, generator=g),
        light=ambient_light(batch, 0.9),
    )


def batch_for(params: FaceParams, setup, image=None) -> dict:
    model, renderer = setup
    out, ndc = render_params(params, model, renderer, SIZE)
    return {
        "image": out.image.detach() if image is None else image,
        "face_mask": torch.ones(params.batch_size, 1, SIZE, SIZE),
        "landmarks": model.landmark_vertices(ndc, params.rotation)[..., :2].detach(),
    }


def test_perfect_reconstruction_has_zero_photometric_and_landmark_loss(setup):
    params = make_params(2)
    result = cest_losses(params, batch_for(params, setup), *setup, LossWeights(), torch.arange(2))
    assert result.terms["photometric"].item() == pytest.approx(0, abs=1e-6)
    assert result.terms["landmark"].item() == pytest.approx(0, abs=1e-6)


def test_swapping_identical_reflectances_changes_nothing(setup):
    albedo = torch.rand(1, 3, 16, 16).expand(4, -1, -1, -1)
    params = make_params(4, albedo)
    batch = batch_for(params, setup, image=torch.rand(4, 3, SIZE, SIZE))
    partner = swap_partners(torch.tensor([0, 0, 1, 1]))
    result = cest_losses(params, batch, *setup, LossWeights(), partner)
    assert torch.allclose(result.terms["swap"], result.terms["photometric"])


def test_swap_loss_sees_a_different_reflectance(setup):
    params = make_params(2)
    result = cest_losses(params, batch_for(params, setup), *setup, LossWeights(), torch.tensor([1, 0]))
    assert result.terms["swap"] > 0.01


def test_shape_swap_is_the_landmark_loss_when_a_clip_shares_one_identity(setup):
    params = make_params(4)
    params = params.replace(identity=params.identity[:1].expand(4, -1))
    batch = batch_for(params, setup)
    batch["landmarks"] = batch["landmarks"] + 0.02  # a landmark error the swap must keep, not add to
    partner = swap_partners(torch.tensor([0, 0, 1, 1]))
    result = cest_losses(params, batch, *setup, LossWeights(shape_swap=1.0), partner)
    assert result.terms["shape_swap"].item() == pytest.approx(result.terms["landmark"].item(), rel=1e-5)


def test_shape_swap_penalises_an_identity_that_fits_one_frame_only(setup):
    params = make_params(2)
    result = cest_losses(
        params, batch_for(params, setup), *setup, LossWeights(shape_swap=1.0), torch.tensor([1, 0])
    )
    assert result.terms["landmark"].item() == pytest.approx(0, abs=1e-6)
    assert result.terms["shape_swap"] > 0.005
    assert (
        "shape_swap"
        not in cest_losses(params, batch_for(params, setup), *setup, LossWeights(), torch.arange(2)).terms
    )


def _brute_contrast(model, identity, clips):
    neutral = model.vertices(identity, torch.zeros(len(identity), model.n_expression)).flatten(1)
    within, between = [], []
    for i in range(len(clips)):
        for j in range(len(clips)):
            d2 = (neutral[i] - neutral[j]).square().sum()
            if i != j and clips[i] == clips[j]:
                within.append(d2)
            elif clips[i] != clips[j]:
                between.append(d2)
    return torch.stack(within).mean() / torch.stack(between).mean()


def test_identity_contrast_is_the_within_over_between_spread(face_model):
    identity = torch.randn(6, face_model.n_identity, generator=torch.Generator().manual_seed(3))
    clips = torch.tensor([0, 0, 1, 1, 1, 2])
    value = identity_contrast(identity, clips, face_model)
    assert value.item() == pytest.approx(_brute_contrast(face_model, identity, clips).item(), rel=1e-4)
    # the same for identities all scaled alike: shrinking every shape does not pay
    assert identity_contrast(identity * 0.3, clips, face_model).item() == pytest.approx(
        value.item(), rel=1e-4
    )


def test_identity_contrast_is_zero_for_one_identity_per_clip_and_without_pairs(face_model):
    people = torch.randn(2, face_model.n_identity, generator=torch.Generator().manual_seed(4))
    assert identity_contrast(people[[0, 0, 1, 1]], torch.tensor([0, 0, 1, 1]), face_model).item() < 1e-6
    assert identity_contrast(people, torch.tensor([0, 1]), face_model).item() == 0  # no pair in a clip
    assert identity_contrast(people, torch.tensor([0, 0]), face_model).item() == 0  # one clip only


def test_identity_contrast_leaves_out_synthetic_clips_unless_asked(setup):
    face_model = setup[0]
    params = make_params(6, seed=7)
    clips = torch.tensor([0, 0, 1, 1, 2, 2])
    synthetic = torch.tensor([False, False, False, False, True, True])
    batch = batch_for(params, setup) | {"clip_id": clips, "gt_has": synthetic}
    real_only = cest_losses(params, batch, *setup, LossWeights(identity_contrast=1.0), torch.arange(6))
    expected = identity_contrast(params.identity[:4], clips[:4], face_model)
    assert real_only.terms["identity_contrast"].item() == pytest.approx(expected.item(), rel=1e-5)
    weights = LossWeights(identity_contrast=1.0, identity_contrast_synthetic=True)
    every = cest_losses(params, batch, *setup, weights, torch.arange(6))
    assert every.terms["identity_contrast"].item() == pytest.approx(
        identity_contrast(params.identity, clips, face_model).item(), rel=1e-5
    )
    assert every.terms["identity_contrast"].item() != pytest.approx(expected.item(), rel=1e-3)


def test_identity_contrast_gradient_draws_a_clip_together(setup):
    face_model = setup[0]
    identity = torch.randn(4, face_model.n_identity, generator=torch.Generator().manual_seed(5))
    identity.requires_grad_(True)
    clips = torch.tensor([0, 0, 1, 1])
    before = identity_contrast(identity, clips, face_model)
    before.backward()
    with torch.no_grad():
        after = identity_contrast(identity - 0.05 * identity.grad / identity.grad.norm(), clips, face_model)
    assert after < before
    params = make_params(4)
    batch = batch_for(params, setup) | {"clip_id": clips}
    terms = cest_losses(params, batch, *setup, LossWeights(identity_contrast=1.0), torch.arange(4)).terms
    assert terms["identity_contrast"].item() == pytest.approx(
        identity_contrast(params.identity, clips, face_model).item(), rel=1e-5
    )


def test_symmetric_albedo_has_zero_symmetry_loss(setup):
    half = torch.rand(2, 3, 16, 8)
    symmetric = torch.cat([half, half.flip(-1)], -1)
    assert torch.equal(symmetry_albedo(symmetric), symmetric)
    params = make_params(2, symmetric)
    result = cest_losses(params, batch_for(params, setup), *setup, LossWeights(), torch.arange(2))
    assert result.terms["symmetry"].item() == pytest.approx(0, abs=1e-6)
    lopsided = make_params(2, torch.cat([half, torch.zeros_like(half)], -1))
    result = cest_losses(lopsided, batch_for(lopsided, setup), *setup, LossWeights(), torch.arange(2))
    assert result.terms["symmetry"] > 0.01


def test_photometric_loss_ignores_pixels_outside_the_mask():
    target = torch.rand(1, 3, 8, 8)
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., :4, :] = 1
    rendered = target.clone()
    rendered[..., 4:, :] = 0  # wrong only outside the mask
    assert photometric_loss(rendered, target, mask).item() == pytest.approx(0, abs=1e-6)
    rendered[..., :4, :] += 0.3
    assert photometric_loss(rendered, target, mask).item() == pytest.approx(0.3 * 3**0.5, rel=1e-2)


def test_landmark_loss_weights_the_jaw():
    target = torch.zeros(1, 68, 2)
    jaw_off = target.clone()
    jaw_off[:, :17, 0] = 0.1
    inner_off = target.clone()
    inner_off[:, 17:34, 0] = 0.1
    assert landmark_loss(jaw_off, target, 0.5) < landmark_loss(inner_off, target, 0.5)
    assert landmark_loss(target, target).item() == pytest.approx(0, abs=1e-7)


def test_coefficient_loss_is_the_mean_square():
    coeffs = torch.tensor([[1.0, -2.0], [0.0, 3.0]])
    assert coefficient_loss(coeffs).item() == pytest.approx(14 / 4)


def test_light_prior_is_zero_for_white_ambient_light_and_grows_with_tint():
    assert light_prior(ambient_light(2)).item() == pytest.approx(0, abs=1e-9)
    tinted = ambient_light(1)
    tinted[:, 0, 0] *= 1.3
    assert light_prior(tinted) > light_prior(ambient_light(1, 1.1)) > 0


def test_swap_partners_stay_within_a_clip():
    clips = torch.tensor([0, 0, 0, 1, 2, 2])
    partner = swap_partners(clips, torch.Generator().manual_seed(3))
    assert torch.equal(clips[partner], clips)
    assert partner[3] == 3  # alone in its clip: its own partner
    others = torch.tensor([0, 1, 2, 4, 5])
    assert (partner[others] != others).all()
    assert sorted(partner[:3].tolist()) == [0, 1, 2]  # a permutation: every albedo is used once


def test_total_is_the_weighted_sum_and_every_term_is_logged(setup):
    params = make_params(2)
    batch = batch_for(params, setup, image=torch.rand(2, 3, SIZE, SIZE))
    weights = LossWeights(photometric=1, swap=2, symmetry=3, landmark=4, identity=5, expression=6, light=7)
    result = cest_losses(params, batch, *setup, weights, torch.tensor([1, 0]))
    assert set(result.terms) == {
        "photometric",
        "swap",
        "symmetry",
        "landmark",
        "identity",
        "expression",
        "light",
    }
    expected = sum(getattr(weights, k) * v for k, v in result.terms.items())
    assert torch.allclose(result.total, expected)


def test_gradients_reach_every_factor(setup):
    params = make_params(2)
    for value in params.fields().values():
        value.requires_grad_(True)
    batch = batch_for(params, setup, image=torch.rand(2, 3, SIZE, SIZE))
    cest_losses(params, batch, *setup, LossWeights(), torch.tensor([1, 0])).total.backward()
    for name, value in params.fields().items():
        assert value.grad is not None and value.grad.abs().sum() > 0, name


def test_albedo_contrast_compares_patterns_not_exposure(setup):
    face_model = setup[0]
    g = torch.Generator().manual_seed(8)
    people = torch.rand(2, 3, 64, 64, generator=g) * 0.5 + 0.25
    clips = torch.tensor([0, 0, 1, 1])
    # one albedo per person, each photo exposed differently: nothing differs within a clip
    exposed = people[[0, 0, 1, 1]] * torch.tensor([1.0, 0.6, 0.8, 1.3])[:, None, None, None]
    assert albedo_contrast(exposed, clips, face_model).item() < 1e-6
    noisy = exposed + 0.05 * torch.randn(exposed.shape, generator=g)
    noisy.requires_grad_(True)
    before = albedo_contrast(noisy, clips, face_model)
    assert 0 < before.item() < 1
    before.backward()
    with torch.no_grad():
        after = albedo_contrast(noisy - 0.05 * noisy.grad / noisy.grad.norm(), clips, face_model)
    assert after < before
    params = make_params(4, albedo=noisy.detach())
    batch = batch_for(params, setup) | {"clip_id": clips, "gt_has": torch.tensor([False, False, True, True])}
    terms = cest_losses(params, batch, *setup, LossWeights(albedo_contrast=1.0), torch.arange(4)).terms
    assert terms["albedo_contrast"].item() == 0  # the two synthetic frames left out: one clip only
