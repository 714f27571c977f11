"""A video's reconstruction has a texture with no holes: texels no frame saw are filled, as in photo mode."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.conftest import SAMPLE, make_video


def _holes(texture: np.ndarray, model) -> int:
    """Black texels inside the UV chart (one texel in from its edge, where rasterising is exact)."""
    import torch.nn.functional as F

    from engine.render.uv import uv_layout

    covered = uv_layout(model, texture.shape[0])[2].float()[None, None]
    inside = (-F.max_pool2d(-covered, 3, 1, 1))[0, 0].bool().numpy()
    return int(((texture.max(-1) <= 2) & inside).sum())


@pytest.mark.parametrize("method", ["cest", "fit"])
def test_no_unfilled_texels_inside_the_uv_chart_of_a_video_texture(tmp_path, method):
    from engine.io.image import load_image
    from engine.reconstruct.reconstructor import Reconstructor, default_weights
    from engine.reconstruct.video import reconstruct_video

    if method == "cest" and default_weights() is None:
        pytest.skip("no shipped CEST weights")
    recon = Reconstructor(method=method)
    summary = reconstruct_video(
        recon, make_video(tmp_path / "clip.mp4"), tmp_path / "out", stop=lambda: False
    )
    assert summary["faces"] >= 3
    texture = load_image(tmp_path / "out" / "face_albedo.png")
    assert _holes(texture, recon.model) == 0
    photo = recon.mesh(recon.reconstruct(SAMPLE).params).texture  # photo mode: the reference
    assert _holes(photo, recon.model) == 0


def test_the_running_albedo_takes_the_frame_where_no_frame_saw():
    from engine.params import FaceParams
    from engine.reconstruct.person import AlbedoMean

    albedo = torch.full((1, 3, 8, 8), 0.6)
    params = FaceParams(
        torch.zeros(1, 3),
        torch.zeros(1, 2),
        torch.ones(1, 1),
        torch.zeros(1, 4),
        torch.zeros(1, 2),
        albedo=albedo,
        light=torch.zeros(1, 9, 3),
    )
    visibility = torch.zeros(1, 1, 8, 8)
    visibility[..., :4] = 1.0
    out = AlbedoMean().update(params, visibility)
    assert torch.allclose(out.albedo, albedo, atol=1e-5)
