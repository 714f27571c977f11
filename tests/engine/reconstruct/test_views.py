"""A reconstruction's outputs decode its geometry once and rasterise it once (DECA's decode once)."""

from __future__ import annotations

import numpy as np
import pytest

from engine.params import FaceParams
from engine.reconstruct.reconstructor import Reconstructor
from engine.reconstruct.views import mesh_overlay, render_views, write_reconstruction


@pytest.fixture(scope="module")
def reconstructed(sample_image):
    reconstructor = Reconstructor(method="fit")
    return reconstructor, reconstructor.reconstruct(sample_image)


def _count_calls(monkeypatch, reconstructor) -> dict[str, int]:
    calls = {"geometry": 0, "vertices": 0, "rasterize": 0}

    def counted(name, fn):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return fn(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(FaceParams, "geometry", counted("geometry", FaceParams.geometry))
    monkeypatch.setattr(reconstructor.model, "vertices", counted("vertices", reconstructor.model.vertices))
    monkeypatch.setattr(
        reconstructor.renderer, "rasterize", counted("rasterize", reconstructor.renderer.rasterize)
    )
    return calls


def test_the_files_of_a_reconstruction_decode_and_rasterise_it_once(reconstructed, tmp_path, monkeypatch):
    reconstructor, recon = reconstructed
    recon.geometry = None
    calls = _count_calls(monkeypatch, reconstructor)
    write_reconstruction(reconstructor, recon, tmp_path)
    assert calls == {"geometry": 1, "vertices": 1, "rasterize": 1}
    write_reconstruction(reconstructor, recon, tmp_path / "again")  # kept on the reconstruction
    assert calls == {"geometry": 1, "vertices": 1, "rasterize": 2}
    recon.params = recon.params.replace(identity=recon.params.identity * 0.5)  # new params: decoded anew
    try:
        reconstructor.mesh(recon.params, geometry=reconstructor.face_geometry(recon))
        assert calls["geometry"] == 2
    finally:
        recon.params = recon.params.replace(identity=recon.params.identity * 2)
        recon.geometry = None


def test_shared_geometry_and_pixels_change_no_output(reconstructed):
    reconstructor, recon = reconstructed
    recon.geometry = None
    views = render_views(reconstructor, recon)
    again = mesh_overlay(reconstructor, recon, recon.crop_tensor())  # rasterised afresh
    assert np.array_equal(views["overlay"], again)
    fresh = reconstructor.mesh(recon.params)  # vertices decoded afresh
    shared = reconstructor.mesh(recon.params, geometry=reconstructor.face_geometry(recon))
    assert np.array_equal(fresh.vertices, shared.vertices)
    out = reconstructor.render(recon.params, 64)
    assert np.array_equal(
        out.image.numpy(), reconstructor.render(recon.params, 64, geometry=recon.geometry).image.numpy()
    )
