import numpy as np
import torch

from engine.facemodel import FaceModel


def test_model_sizes_and_ranges(face_model):
    assert 1500 <= face_model.n_vertices <= 4000
    assert face_model.faces.shape[1] == 3 and face_model.faces.max() < face_model.n_vertices
    assert face_model.landmarks.shape == (68,)
    assert face_model.uvs.min() >= 0 and face_model.uvs.max() <= 1
    assert face_model.n_identity == 80 and face_model.n_expression == 53
    # A face ~15 cm wide and ~20 cm tall, centred in x.
    extent = face_model.mean.amax(0) - face_model.mean.amin(0)
    assert 12 < extent[0] < 20 and 15 < extent[1] < 25
    assert abs(float(face_model.mean[:, 0].mean())) < 1e-3


def test_mean_shape_for_zero_coefficients(face_model):
    zero_id = torch.zeros(1, face_model.n_identity)
    zero_exp = torch.zeros(1, face_model.n_expression)
    assert torch.allclose(face_model.vertices(zero_id, zero_exp)[0], face_model.mean)


def test_coefficients_are_linear(face_model):
    a, b = torch.randn(2, face_model.n_identity), torch.rand(2, face_model.n_expression)
    both = face_model.vertices(a, b)
    summed = face_model.vertices(a, 0 * b) + face_model.vertices(0 * a, b) - face_model.mean
    assert torch.allclose(both, summed, atol=1e-4)


def test_symmetry_map_is_an_involution_and_mirrors_geometry_and_uv(face_model):
    sym = face_model.symmetry
    assert torch.equal(sym[sym], torch.arange(face_model.n_vertices))
    mirrored = face_model.mirror(face_model.mean[None])[0]
    assert (mirrored - face_model.mean).abs().max() < 1e-2  # cm
    uv = face_model.uvs
    assert torch.allclose(uv[sym, 0], 1 - uv[:, 0], atol=1e-4)
    assert torch.allclose(uv[sym, 1], uv[:, 1], atol=1e-4)


def test_landmarks_in_anatomical_order(face_model):
    lm = face_model.landmark_vertices(face_model.mean[None])[0]
    # Right jaw end (0) is on the viewer's left of the left jaw end (16); brows above eyes above
    # the nose tip (30) above the mouth (62) above the chin (8).
    assert lm[0, 0] < lm[16, 0]
    assert lm[19, 1] > lm[37, 1] > lm[30, 1] > lm[62, 1] > lm[8, 1]
    assert lm[30, 2] == lm[:, 2].max()  # the nose tip is the closest landmark


def test_identity_modes_change_the_shape_plausibly(face_model):
    verts = face_model.vertices(
        torch.randn(8, face_model.n_identity), torch.zeros(8, face_model.n_expression)
    )
    offset = (verts - face_model.mean).norm(dim=-1)
    assert 0.1 < float(offset.mean()) < 2.0  # centimetres


def test_converter_reproduces_the_committed_model(tmp_path, shared_data):
    import importlib.util

    from tests.conftest import ROOT

    spec = importlib.util.spec_from_file_location("convert", ROOT / "scripts" / "convert_facemodel.py")
    convert = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(convert)
    convert.convert(shared_data / "ict-facekit", tmp_path)
    fresh = FaceModel.load(tmp_path / "facemodel.npz")
    shipped = FaceModel.load()
    assert torch.equal(fresh.faces, shipped.faces)
    assert np.allclose(fresh.mean.numpy(), shipped.mean.numpy())
    assert torch.equal(fresh.landmarks, shipped.landmarks)  # the calibrated ones, from the committed JSON
    assert torch.equal(fresh.landmarks_ict, shipped.landmarks_ict)
    assert (tmp_path / "LICENSE-ICT-FaceKit.txt").exists()
    # Without the calibration the ICT landmarks come back, on the very same mesh.
    convert.convert(shared_data / "ict-facekit", tmp_path / "ict", calibrated=None)
    plain = FaceModel.load(tmp_path / "ict" / "facemodel.npz")
    assert torch.equal(plain.faces, shipped.faces)
    assert torch.equal(plain.landmarks, shipped.landmarks_ict)


def test_calibrated_landmarks_are_symmetric_and_match_their_record(face_model):
    """scripts/calibrate_landmarks.py: mirror pairs on mirror-twin vertices, centre-line points on the
    midline, ICT originals kept, and the committed JSON names the same vertices as the .npz."""
    import json

    from engine.detect import IBUG68_FLIP
    from tests.conftest import ROOT

    lm, sym = face_model.landmarks, face_model.symmetry
    assert torch.equal(sym[lm], lm[torch.as_tensor(IBUG68_FLIP)])
    midline = [8, 27, 28, 29, 30, 33, 51, 57, 62, 66]
    assert face_model.mean[lm[midline], 0].abs().max() < 1e-3
    assert face_model.landmarks_ict.shape == (68,) and not torch.equal(face_model.landmarks_ict, lm)
    moved = (face_model.mean[lm] - face_model.mean[face_model.landmarks_ict]).norm(dim=-1)
    assert float(moved.max()) < 2.5  # cm: re-anchored nearby, not somewhere else
    drop = face_model.expression_basis[face_model.expression_names.index("jawOpen"), lm, 1]
    assert (drop[[65, 66, 67]] < drop[[61, 62, 63]] - 1).all()  # the inner lower lip opens with the jaw
    record = json.loads((ROOT / "resources/facemodel/landmarks_calibrated.json").read_text())
    with np.load(ROOT / "resources/facemodel/facemodel.npz") as data:
        source = data["source_index"]
    assert source[lm.numpy()].tolist() == record["landmarks"]
    assert source[face_model.landmarks_ict.numpy()].tolist() == record["landmarks_ict"]


def _frontal_render_mask(face_model, expression):
    from engine.camera import project, to_camera
    from engine.render.renderer import Renderer
    from engine.sh import ambient_light

    verts = face_model.vertices(torch.zeros(1, face_model.n_identity), expression)
    cam = to_camera(verts, torch.zeros(1, 3))
    ndc = project(cam, torch.tensor([[0.1]]), torch.zeros(1, 2))
    out = Renderer(face_model.faces, face_model.uvs).render(
        cam, ndc, torch.full((1, 3, 64, 64), 0.5), ambient_light(1), 256
    )
    pixels = (ndc[0, :, :2] + 1) / 2 * 256 - 0.5
    return out.mask[0, 0], pixels


def test_the_eyes_are_closed_surfaces_that_blink_with_the_lids(face_model):
    """No holes where the eyes are (the mesh, the viewport and every export show eyes), and the
    eye surfaces follow the lids: their border vertices sit exactly on the lid vertices."""
    caps = face_model.eye_vertices.numpy()
    assert len(caps) > 20 and caps.min() == face_model.n_vertices - len(caps)
    for blink in (0.0, 1.0):
        expression = torch.zeros(1, face_model.n_expression)
        for name in ("eyeBlink_L", "eyeBlink_R"):
            expression[0, face_model.expression_names.index(name)] = blink
        mask, pixels = _frontal_render_mask(face_model, expression)
        for eye in (range(36, 42), range(42, 48)):
            centre = pixels[face_model.landmarks[list(eye)]].mean(0).round().long()
            assert mask[centre[1], centre[0]] > 0.5, f"eye hole at {centre.tolist()} (blink {blink})"
        verts = face_model.vertices(torch.zeros(1, face_model.n_identity), expression)[0]
        cap_pts = verts[torch.as_tensor(caps)]
        face_pts = verts[: face_model.n_vertices - len(caps)]
        nearest = torch.cdist(cap_pts, face_pts).min(1).values
        assert (nearest < 1e-3).sum() >= 16  # each cap's rim is the lids' own vertices


def test_eye_surfaces_have_their_own_uvs_outside_the_face_chart(face_model):
    caps = face_model.eye_vertices
    cap_faces = torch.isin(face_model.faces, caps).all(1)
    assert cap_faces.sum() > 20 and (torch.isin(face_model.faces, caps).any(1) == cap_faces).all()
    cap_uv = face_model.uvs[caps]
    face_uv = face_model.uvs[face_model.faces[~cap_faces].unique()]
    assert float(cap_uv[:, 1].max()) < float(face_uv[:, 1].min()) + 0.06  # below the jaw's lowest texel row
    assert float(torch.cdist(cap_uv, face_uv).min()) > 0.005
