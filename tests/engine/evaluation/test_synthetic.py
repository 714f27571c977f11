"""`cest eval`: annotation readers round-trip, and small end-to-end runs that write the reports."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from engine.io.annotations import (
    AnnotatedFace,
    AnnotationError,
    find_annotated_images,
    read_dlib_xml,
    read_pts,
    write_dlib_xml,
    write_pts,
)


def _points(seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).uniform(10, 200, (68, 2))).astype(np.float32)


# ------------------------------------------------------------------------------ .pts / XML


def test_pts_round_trip_and_one_based_convention(tmp_path):
    pts = _points()
    path = tmp_path / "face.pts"
    write_pts(path, pts)
    text = path.read_text()
    assert text.startswith("version: 1\nn_points:  68\n{") and text.rstrip().endswith("}")
    first = [float(v) for v in text.splitlines()[3].split()]
    assert first == pytest.approx(pts[0] + 1, abs=1e-4)  # stored 1-based, like 300-W
    assert np.allclose(read_pts(path), pts, atol=1e-4)
    assert np.allclose(read_pts(path, one_based=False), pts + 1, atol=1e-4)


def test_pts_hand_written_file(tmp_path):
    lines = ["version: 1", "n_points: 68", "{"] + [f"{i + 1} {2 * i + 1}" for i in range(68)] + ["}"]
    path = tmp_path / "a.pts"
    path.write_text("\r\n".join(lines))  # Windows line ends, as some 300-W files have
    pts = read_pts(path)
    assert pts.shape == (68, 2)
    assert pts[5].tolist() == [5.0, 10.0]


def test_pts_errors(tmp_path):
    bad = tmp_path / "bad.pts"
    bad.write_text("version: 1\nn_points: 68\n{\n1 2\n3 4\n}\n")
    with pytest.raises(AnnotationError, match="declares 68"):
        read_pts(bad)
    junk = tmp_path / "junk.pts"
    junk.write_text("{\nhello world\n}\n")
    with pytest.raises(AnnotationError):
        read_pts(junk)


def test_dlib_xml_round_trip(tmp_path):
    faces = [
        AnnotatedFace(tmp_path / "imgs" / "one.jpg", _points(1), np.array([5, 6, 150, 170], np.float32)),
        AnnotatedFace(tmp_path / "imgs" / "one.jpg", _points(2)),  # second face, box from the points
        AnnotatedFace(tmp_path / "two.png", _points(3)),
    ]
    xml = tmp_path / "labels.xml"
    write_dlib_xml(xml, faces)
    back = read_dlib_xml(xml)
    assert len(back) == 3
    for a, b in zip(faces, back):
        assert b.image == a.image
        assert np.allclose(a.points, b.points, atol=1e-3)
    assert back[0].box.tolist() == [5, 6, 150, 170]
    assert "imgs/one.jpg" in xml.read_text()  # relative to the XML


def test_dlib_xml_hand_written(tmp_path):
    parts = "".join(f"<part name='{i:02d}' x='{i}' y='{100 + i}'/>" for i in range(68))
    xml = tmp_path / "d.xml"
    xml.write_text(
        "<?xml version='1.0' encoding='ISO-8859-1'?><dataset><images>"
        f"<image file='x.png'><box top='1' left='2' width='30' height='40'>{parts}</box>"
        "<box top='1' left='2' width='3' height='4'/></image>"  # a box without parts is skipped
        "</images></dataset>"
    )
    faces = read_dlib_xml(xml)
    assert len(faces) == 1
    assert faces[0].points[67].tolist() == [67.0, 167.0]
    assert faces[0].box.tolist() == [2, 1, 32, 41]


def test_find_annotated_images(tmp_path):
    from PIL import Image

    for name in ("a.png", "b.jpg", "lonely.png"):
        Image.new("RGB", (8, 8)).save(tmp_path / name)
    write_pts(tmp_path / "a.pts", _points(1))
    write_pts(tmp_path / "b_1.pts", _points(2))  # 300-W style: several faces of b.jpg
    write_pts(tmp_path / "b_2.pts", _points(3))
    write_dlib_xml(tmp_path / "more.xml", [AnnotatedFace(tmp_path / "lonely.png", _points(4))])
    found = find_annotated_images(tmp_path)
    assert sorted(f.image.name for f in found) == ["a.png", "b.jpg", "b.jpg", "lonely.png"]


# ------------------------------------------------------------------------------ end to end


def test_light_angles_recover_the_direction():
    from engine.evaluation.synthetic import light_angles
    from engine.lighting import LightSettings, settings_to_sh

    light = torch.cat(
        [settings_to_sh(LightSettings(40, 20, 0.7, 0.4)), settings_to_sh(LightSettings(-70, -10))]
    )
    assert light_angles(light) == pytest.approx(np.array([[40, 20], [-70, -10]]), abs=0.5)


def test_synthetic_eval_writes_json_and_markdown(tmp_path):
    from engine.evaluation.cli import main

    out = tmp_path / "bench"
    code = main(
        [
            "--synthetic",
            "4",
            "--methods",
            "fit,mean,cest",
            "--weights",
            str(tmp_path / "none.safetensors"),
            "--out",
            str(out),
            "--no-progress",
            "--threads",
            "1",
            "--references",
        ]
    )
    assert code == 0
    results = json.loads((out / "synthetic_eval.json").read_text())
    assert results["n"] == 4 and results["split"] == "heldout"
    assert set(results["references"]) == {"true-shape@fit-view", "mean-face@true-view"}
    for name in results["references"]:
        assert np.isfinite(results["results"][name]["side"]["mean"]), name
    assert "no weights" in results["results"]["cest"]["skipped"]
    assert sum(results["landmarks"]["counts"].values()) == 4
    for name in ("fit", "mean"):
        row = results["results"][name]
        for key in ("side", "depth_cm", "mad", "albedo", "albedo_seen", "nme"):
            assert row[key]["n"] == 4 and np.isfinite(row[key]["mean"]), (name, key)
        assert 0 < row["mad"]["mean"] < 60 and 0 <= row["side"]["mean"] < 10
        assert row["overlap"]["mean"] > 0.5  # the metrics saw most of the face
    assert len(results["per_image"]) == 4
    table = (out / "synthetic_eval.md").read_text()
    assert "| fit |" in table and "| mean |" in table and "skipped" in table
    assert "| mean-face@true-view |" in table and "Reference rows" in table


def test_the_true_shape_at_the_true_viewpoint_scores_no_geometry_error(face_model):
    from engine.evaluation.synthetic import reference_params, score, synthetic_set
    from engine.render import Renderer

    testset = synthetic_set(3, seed=2, image_size=64, texture_size=32, face_model=face_model, progress=False)
    truth = testset.params
    refs = reference_params(truth, truth, 32)  # the "fit" placed exactly
    renderer = Renderer(face_model.faces, face_model.uvs)
    exact = score(refs["true-shape@fit-view"], testset, face_model, renderer)
    assert np.allclose(exact["side"], 0, atol=1e-3) and np.allclose(exact["mad"], 0, atol=0.05)
    mean = refs["mean-face@true-view"]
    assert torch.equal(mean.rotation, truth.rotation) and not mean.identity.any()
    assert score(mean, testset, face_model, renderer)["mad"].mean() > 1  # the shape's own error


def test_landmark_eval_on_annotated_synthetic_faces(tmp_path):
    from PIL import Image

    from engine.evaluation.cli import main
    from engine.evaluation.synthetic import synthetic_set

    faces = synthetic_set(2, seed=5, progress=False)
    for i in range(2):
        Image.fromarray(faces.uint8(i)).save(tmp_path / f"face{i}.png")
        write_pts(tmp_path / f"face{i}.pts", faces.landmarks[i].numpy())
    out = tmp_path / "out"
    assert main(["--landmarks", str(tmp_path), "--methods", "fit", "--out", str(out), "--no-progress"]) == 0
    results = json.loads((out / "landmarks_nme.json").read_text())
    assert results["faces"] == 2
    summary = results["nme_percent_iod"]
    if results["detected"]:
        assert 0 < summary["detector"]["mean"] < 50 and 0 < summary["fit"]["mean"] < 50
    assert (out / "landmarks_nme.md").exists()
