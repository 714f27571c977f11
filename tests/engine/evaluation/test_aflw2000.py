"""AFLW2000-3D: readers (.mat, 3DDFA's arrays), the two protocols on made-up data, and a run."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest
import torch

from engine.evaluation.aflw2000 import (
    box_nme,
    evaluate_aflw2000,
    find_faces,
    pose_errors,
    read_mat,
    read_npy_tables,
    yaw_binned,
)
from engine.headpose import benchmark_pose_deg, matrices_to_benchmark_deg, rotvec_to_matrix
from tests.conftest import SAMPLE


def _ddfa_matrix(pitch: float, yaw: float, roll: float) -> np.ndarray:
    """3DDFA / face3d ``angle2matrix_3ddfa``: transposed axis matrices, Rx @ Ry @ Rz (radians)."""
    cx, sx, cy, sy, cz, sz = (
        math.cos(pitch),
        math.sin(pitch),
        math.cos(yaw),
        math.sin(yaw),
        math.cos(roll),
        math.sin(roll),
    )
    rx = np.array([[1, 0, 0], [0, cx, sx], [0, -sx, cx]])
    ry = np.array([[cy, 0, -sy], [0, 1, 0], [sy, 0, cy]])
    rz = np.array([[cz, sz, 0], [-sz, cz, 0], [0, 0, 1]])
    return rx @ ry @ rz


def test_benchmark_angles_are_those_of_3ddfas_pose_para():
    angles = np.radians([[12.0, -35.0, 8.0], [-20.0, 60.0, -15.0]])
    matrices = np.array([_ddfa_matrix(*a) for a in angles])
    got = matrices_to_benchmark_deg(matrices, np.eye(3))
    np.testing.assert_allclose(got, np.degrees(angles), atol=1e-6)


def test_our_yaw_is_the_benchmarks_yaw_negated_and_the_offset_applies():
    ours = torch.tensor([[0.0, 0.3, 0.0]])
    np.testing.assert_allclose(benchmark_pose_deg(ours, np.eye(3))[0], [0, -math.degrees(0.3), 0], atol=1e-6)
    offset = rotvec_to_matrix(np.radians([10.0, 0, 0]))
    level = benchmark_pose_deg(torch.tensor([[math.radians(10.0), 0.0, 0.0]]), offset)[0]
    np.testing.assert_allclose(level, [0, 0, 0], atol=1e-6)


def test_box_nme_and_yaw_bins_known_answers():
    truth = np.array([[0.0, 0.0], [10.0, 0.0], [10.0, 40.0], [0.0, 40.0]])  # box 10 x 40: sqrt = 20
    assert box_nme(truth + [2.0, 0.0], truth) == pytest.approx(0.1)
    nme = np.array([0.01, 0.03, 0.05, 0.07])
    binned = yaw_binned(nme, np.array([-10.0, 20.0, 45.0, -80.0]))
    assert binned["[0,30]"] == pytest.approx(2.0) and binned["n[0,30]"] == 2
    assert binned["[30,60]"] == pytest.approx(5.0) and binned["[60,90]"] == pytest.approx(7.0)
    assert binned["mean_of_bins"] == pytest.approx((2 + 5 + 7) / 3)
    assert binned["all"] == pytest.approx(4.0)


def test_pose_errors_drop_faces_beyond_99_degrees_and_wrap_yaw():
    gt = np.array([[0.0, 10.0, 0.0], [5.0, 179.0, 0.0], [0.0, 120.0, 0.0]])
    pred = np.array([[2.0, 14.0, -1.0], [5.0, -179.0, 0.0], [0.0, 0.0, 0.0]])
    # the second face is dropped too (|yaw| 179 > 99); only the first remains
    out = pose_errors(pred, gt)
    assert out["n"] == 1 and out["pitch"] == 2 and out["yaw"] == 4 and out["roll"] == 1
    assert out["mean"] == pytest.approx(7 / 3)
    from engine.headpose import pose_mae

    assert pose_mae(np.array([[0, 179.0, 0]]), np.array([[0, -179.0, 0]]))[0, 1] == pytest.approx(2.0)


def test_pose_errors_without_pitch_and_roll_report_yaw_only():
    gt = np.array([[math.nan, 10.0, math.nan]])
    out = pose_errors(np.array([[3.0, 12.0, 4.0]]), gt)
    assert (
        out["yaw"] == 2
        and out["pitch"] is None
        and out["mean"] is None
        and out["angles_with_ground_truth"] == 1
    )


def _write_mat(path, points2d, pose_deg):
    from scipy.io import savemat

    pt3d = np.vstack([points2d.T, np.zeros((1, 68))])
    savemat(str(path), {"pt3d_68": pt3d, "Pose_Para": np.array([[*np.radians(pose_deg), 0, 0, 0, 1]])})


def test_mat_reader(tmp_path):
    pts = np.random.default_rng(0).uniform(0, 400, (68, 2))
    _write_mat(tmp_path / "a.mat", pts, [10.0, -20.0, 5.0])
    got_pts, pose = read_mat(tmp_path / "a.mat")
    np.testing.assert_allclose(got_pts, pts)
    np.testing.assert_allclose(pose, [10.0, -20.0, 5.0])
    from scipy.io import savemat

    savemat(str(tmp_path / "b.mat"), {"other": np.zeros(3)})
    with pytest.raises(ValueError, match="pt3d_68"):
        read_mat(tmp_path / "b.mat")


def test_npy_tables_reader(tmp_path):
    rng = np.random.default_rng(1)
    (tmp_path / "filelist.txt").write_text("image00002.jpg\nimage00004.jpg\n")
    pts = rng.uniform(0, 450, (2, 3, 68)).astype(np.float32)
    np.save(tmp_path / "AFLW2000-3D.pts68.npy", pts)
    np.save(tmp_path / "AFLW2000-3D-Reannotated.pts68.npy", pts[:, :2] + 1)
    np.save(tmp_path / "AFLW2000-3D.pose.npy", np.array([3.0, -70.0]))
    table = read_npy_tables(tmp_path, "original")
    np.testing.assert_allclose(table["image00004.jpg"][0], pts[1, :2].T, rtol=1e-6)
    assert table["image00004.jpg"][1][1] == -70.0 and math.isnan(table["image00004.jpg"][1][0])
    np.testing.assert_allclose(
        read_npy_tables(tmp_path, "reannotated")["image00002.jpg"][0], pts[0, :2].T + 1, rtol=1e-6
    )


@pytest.fixture(scope="module")
def sample_faces():
    from engine.detect import default_detector
    from engine.io.image import load_image

    image = load_image(SAMPLE)
    return image, default_detector().detect(image)[0]


def test_run_on_a_mat_folder_end_to_end(tmp_path, sample_faces):
    image, face = sample_faces
    shutil.copy(SAMPLE, tmp_path / "image00002.png")
    _write_mat(tmp_path / "image00002.mat", face.landmarks.astype(np.float64), [5.0, 10.0, -3.0])
    faces = find_faces(tmp_path)
    assert len(faces) == 1 and faces[0].extra["source"] == "mat"
    results = evaluate_aflw2000(tmp_path, methods=["fit"], progress=False)
    assert results["detected"] == 1
    assert results["nme_box_percent"]["detector"]["all"] < 1e-6  # scored against its own points
    assert results["nme_box_percent"]["fit"]["all"] < 5
    pose = results["pose_mae_deg"]["fit"]
    assert pose["n"] == 1 and pose["angles_with_ground_truth"] == 3 and pose["mean"] is not None
    json.dumps(results, allow_nan=False)


def test_cli_on_the_shared_images_prints_a_json_line_last(shared_data, tmp_path, capsys):
    from engine.evaluation.cli import main

    assert (
        main(
            [
                "--aflw2000",
                str(shared_data / "aflw2000"),
                "--methods",
                "fit",
                "--out",
                str(tmp_path),
                "--no-progress",
            ]
        )
        == 0
    )
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert last["faces"] == 9 and last["detected"] == 9
    assert last["nme_box_percent"]["fit"]["mean_of_bins"] is not None
    assert (tmp_path / "aflw2000.md").read_text().count("|") > 20


def test_the_mean_face_is_skipped_with_a_reason_on_photos(tmp_path, sample_faces):
    """--methods mean is valid for the synthetic benchmark; on photos it is skipped, not a crash."""
    image, face = sample_faces
    shutil.copy(SAMPLE, tmp_path / "image00002.png")
    _write_mat(tmp_path / "image00002.mat", face.landmarks.astype(np.float64), [5.0, 10.0, -3.0])
    results = evaluate_aflw2000(tmp_path, methods=["fit", "mean"], progress=False)
    assert "mean" in results["skipped"] and "fit" in results["pose_mae_deg"]
