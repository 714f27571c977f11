"""A track ends at another person's shape, not at one person's expressive frames."""

import torch

from engine.reconstruct.person import Track
from engine.reconstruct.shots import IDENTITY_JUMP_CM, shape_distance
from tests.conftest import random_params


def _frames(face_model, identity: torch.Tensor, count: int, scatter: float, seed: int):
    gen = torch.Generator().manual_seed(seed)
    base = random_params(face_model, batch=1, seed=seed)
    for _ in range(count):
        yield base.replace(identity=identity + scatter * torch.randn(identity.shape, generator=gen))


def test_an_expressive_person_stays_one_track_and_another_person_starts_one(face_model):
    person = torch.zeros(1, face_model.n_identity)
    other = torch.zeros(1, face_model.n_identity)
    other[0, 0] = 5.0
    track = Track()
    scattered = []
    for params in _frames(face_model, person, 40, 0.8, seed=1):
        mean = None if track.identity_sum is None else track.identity_sum / track.weight_sum
        if mean is not None and track.weight_sum >= 3:
            scattered.append(shape_distance(face_model, params.identity, mean))
        assert not track.someone_else(face_model, params)
        track.update(params)
    assert max(scattered) > IDENTITY_JUMP_CM  # the fixed threshold alone would have split it
    newcomer = next(_frames(face_model, other, 1, 0.0, seed=2))
    assert shape_distance(face_model, other, person) > 1.5
    assert track.someone_else(face_model, newcomer)


def test_a_steady_track_notices_a_small_change_at_once(face_model):
    person = torch.zeros(1, face_model.n_identity)
    track = Track()
    for params in _frames(face_model, person, 4, 0.0, seed=3):
        assert not track.someone_else(face_model, params)
        track.update(params)
    nearby = person.clone()
    nearby[0, 0] = 1.0
    assert shape_distance(face_model, nearby, person) > IDENTITY_JUMP_CM
    assert track.someone_else(face_model, next(_frames(face_model, nearby, 1, 0.0, seed=3)))
