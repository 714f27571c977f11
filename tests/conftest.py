"""Shared fixtures: the face model, the sample photo, the shared data folder (skipped when absent)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("CEST_SHARED", ROOT.parent / "shared"))
SAMPLE = ROOT / "resources" / "samples" / "astronaut.png"

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def face_model():
    from engine.facemodel import FaceModel

    return FaceModel.load()


@pytest.fixture(scope="session")
def sample_image() -> np.ndarray:
    from engine.io.image import load_image

    return load_image(SAMPLE)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    data = SHARED / "data"
    if not data.exists():
        pytest.skip(f"needs ../shared/data (not on this machine: {data})")
    return data


def random_params(model, batch: int = 2, seed: int = 0, tex: int = 64):
    """Plausible random FaceParams: moderate pose, identity, a little expression, ambient+side light."""
    from engine.lighting import LightSettings, settings_to_sh
    from engine.params import FaceParams

    gen = torch.Generator().manual_seed(seed)
    rnd = lambda *s: torch.randn(*s, generator=gen)  # noqa: E731
    identity = torch.zeros(batch, model.n_identity)
    identity[:, :20] = rnd(batch, 20) * 0.7
    expression = (torch.rand(batch, model.n_expression, generator=gen) * 0.3) * (
        torch.rand(batch, model.n_expression, generator=gen) < 0.1
    )
    albedo = (0.55 + 0.1 * rnd(batch, 3, 1, 1)).clamp(0.2, 0.9).expand(batch, 3, tex, tex).clone()
    light = settings_to_sh(LightSettings(30, 20, 0.6, 0.5)).expand(batch, 9, 3).clone()
    return FaceParams(
        rotation=rnd(batch, 3) * torch.tensor([0.1, 0.3, 0.08]),
        translation=rnd(batch, 2) * 0.03,
        scale=torch.full((batch, 1), 0.08),
        identity=identity,
        expression=expression,
        albedo=albedo,
        light=light,
    )


def make_video(path: Path, frames: int = 6, size: int = 288) -> Path:
    """A short clip panning over the sample face (H.264 MP4)."""
    from engine.io.image import load_image
    from engine.io.video import VideoWriter

    image = load_image(SAMPLE)
    with VideoWriter(path, 10) as writer:
        for i in range(frames):
            x0, y0 = 60 + 6 * i, 10 + 3 * i
            writer.write(np.ascontiguousarray(image[y0 : y0 + size, x0 : x0 + size]))
    return path
