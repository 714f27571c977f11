"""300-W figures (failure rate and AUC at 8%, inner 51) and the same-person distance ratio."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from engine.evaluation.landmark_figures import auc, figures, point_errors
from engine.evaluation.same_person import within_between
from tests.conftest import SAMPLE


def test_auc_and_failure_rate_known_answers():
    assert auc(np.zeros(10)) == pytest.approx(1.0, abs=1e-3)
    assert auc(np.full(10, 0.1)) == 0.0
    assert auc(np.full(4, 0.04)) == pytest.approx(0.5, abs=2e-3)  # the curve steps to 1 half-way
    f = figures(np.array([0.02, 0.04, 0.09, 0.12]), np.array([0.01, 0.03, 0.05, 0.07]))
    assert (
        f["failure_rate_8"] == 50.0
        and f["nme"] == pytest.approx(6.75)
        and f["nme_inner51"] == pytest.approx(4.0)
    )


def test_point_errors_use_the_outer_eye_corners():
    truth = np.zeros((68, 2))
    truth[45] = [100.0, 0.0]
    pred = truth + [10.0, 0.0]
    np.testing.assert_allclose(point_errors(pred, truth), 0.1)


def test_within_between_ratio():
    people = np.array([[0.0, 0.0], [0.1, 0.0], [5.0, 0.0], [5.1, 0.0]])
    r = within_between(people, np.array([0, 0, 1, 1]))
    assert r["within"] == pytest.approx(0.1 / np.sqrt(2))
    assert r["ratio"] < 0.05
    same = within_between(np.array([[0.0], [1.0], [0.0], [1.0]]), np.array([0, 0, 1, 1]))
    assert same["ratio"] > 1  # alternating photos: nothing known of who is who


def test_landmark_eval_reads_ppm_and_reports_the_300w_figures(tmp_path, capsys):
    from PIL import Image

    from engine.detect import default_detector
    from engine.evaluation.cli import main
    from engine.io.annotations import write_pts
    from engine.io.image import load_image

    image = load_image(SAMPLE)
    Image.fromarray(image).save(tmp_path / "face.ppm")
    write_pts(tmp_path / "face.pts", default_detector().detect(image)[0].landmarks)
    assert (
        main(
            [
                "--landmarks",
                str(tmp_path),
                "--methods",
                "fit",
                "--out",
                str(tmp_path / "out"),
                "--no-progress",
            ]
        )
        == 0
    )
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert last["faces"] == 1 and last["detected"] == 1
    det = last["figures_300w"]["detector"]
    assert det["nme"] < 0.5 and det["failure_rate_8"] == 0 and det["auc_8"] > 0.9
    row = json.loads((tmp_path / "out" / "landmarks_nme.json").read_text())["per_image"][0]
    assert set(row["nme_inner51"]) == {"detector", "fit"}
    shutil.rmtree(tmp_path / "out")


def test_same_person_end_to_end_on_two_people_of_the_sample(tmp_path):
    """Each method's maps, whatever their size (the fit's albedo is larger than the networks')."""
    from PIL import Image

    from engine.evaluation.same_person import evaluate_same_person

    image = Image.open(SAMPLE)
    for person, flip in (("ann", False), ("bob", True)):
        (tmp_path / person).mkdir()
        for i, angle in enumerate((0, 5)):
            photo = image.rotate(angle)
            photo = photo.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if flip else photo
            photo.save(tmp_path / person / f"{i}.png")
    results = evaluate_same_person(tmp_path, methods=["fit"], progress=False)
    fit = results["methods"]["fit"]
    assert fit["photos"] == 4 and fit["failed"] == 0
    assert 0 <= fit["shape_cm"]["ratio"] and 0 <= fit["albedo"]["ratio"]


def test_landmark_eval_plots_a_contact_sheet_of_the_faces(tmp_path):
    """--plots with --landmarks: one row per face, the input then four panels per method."""
    from PIL import Image

    from engine.detect import default_detector
    from engine.evaluation.cli import main
    from engine.evaluation.contact_sheet import CELL, PANELS
    from engine.io.annotations import write_pts
    from engine.io.image import load_image

    image = load_image(SAMPLE)
    for name in ("a", "b"):
        Image.fromarray(image).save(tmp_path / f"{name}.png")
        write_pts(tmp_path / f"{name}.pts", default_detector().detect(image)[0].landmarks)
    out = tmp_path / "out"
    args = ["--landmarks", str(tmp_path), "--methods", "fit,cest", "--plots", "--examples", "2"]
    assert main([*args, "--out", str(out), "--no-progress"]) == 0
    sheet = load_image(out / "landmarks_faces.png")
    assert sheet.shape == (2 * CELL, (1 + 2 * len(PANELS)) * CELL, 3)
    face = sheet[CELL : 2 * CELL]  # the second row: no labels
    assert face[:, CELL:].std() > 10 and (face[:, : 2 * CELL] != face[:, 2 * CELL : 4 * CELL]).any()
