"""The app's exported maps and params.json follow the CLI's rules (one implementation of each view)."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="module")
def reconstruction(sample_image):
    from engine.reconstruct.reconstructor import Reconstructor

    recon = Reconstructor(method="fit")
    return recon, recon.reconstruct(sample_image)


def test_app_params_json_has_the_cli_layout(reconstruction):
    from cest_studio.tasks import FaceResult, _face_record, _params_json
    from engine.reconstruct.views import params_record

    recon, rec = reconstruction
    face = FaceResult(
        rec.source,
        rec.image,
        rec.face.landmarks,
        rec.crop,
        rec.method,
        rec.params,
        recon.model,
        recon.renderer,
        {},
        (0.0, 0.0, 0.0),
        record=_face_record(rec),
    )
    assert _params_json(face, rec.params) == params_record(rec)


def test_app_shading_and_depth_maps_follow_the_cli_rule(reconstruction):
    from engine.reconstruct.editing import Edits, FaceEditor
    from engine.reconstruct.reconstructor import image_tensor
    from engine.reconstruct.views import render_views

    recon, rec = reconstruction
    cli = render_views(recon, rec)
    editor = FaceEditor(recon.model, recon.renderer, rec.params, image_tensor(rec.crop), rec.crop.shape[0])
    app = editor.maps(Edits())
    for name in ("shading", "depth"):
        inside = cli[name].max(-1) > 0
        assert app[name].shape == cli[name].shape
        # the same normalisation: the brightest 1% reaches white in both, and the pixels agree
        assert np.percentile(app[name][inside], 99.5) >= 250
        diff = np.abs(app[name].astype(int) - cli[name].astype(int))[inside]
        assert np.median(diff) <= 2, name
