"""Calibrate the rotation between the ICT model's frame and the benchmarks' (BFM) frame.

    python scripts/calibrate_pose.py   # writes resources/facemodel/pose_calibration.json

Data: the AFLW2000-3D ground truth as 3DDFA keeps it (../shared/data/aflw2000: 3D 68-point
landmarks and yaw of 2,000 faces), without the faces whose images are in that folder (we measure
on those). Each face's rotation relative to our model is the Procrustes fit of the mean ICT
face's 68 landmark vertices to its 3D landmarks. Yaw alone cannot fix a pitch offset (we tried:
the fit on two random halves disagreed by 20 degrees), so the offset is the rotation that levels
the near-frontal faces (|yaw| <= 10 deg): their mean pitch and roll become 0. That is an assumption
about photos (faces that look at the camera are level on average), stated here and in the README.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from engine.facemodel import FaceModel
from engine.headpose import CALIBRATION_FILE, matrices_to_benchmark_deg, rotvec_to_matrix
from engine.resources import resources_root

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "aflw2000"
FRONTAL_YAW_DEG = 10.0


def procrustes_rotation(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    a, b = src - src.mean(0), dst - dst.mean(0)
    u, _, vt = np.linalg.svd(b.T @ a)
    return u @ np.diag([1, 1, np.sign(np.linalg.det(u @ vt))]) @ vt


def face_rotations(points3d: np.ndarray, template: np.ndarray) -> np.ndarray:
    """(N, 3, 68) image-frame 3D landmarks (y down) -> (N, 3, 3) our camera rotations."""
    out = []
    for p in points3d:
        q = p.T.astype(np.float64) * np.array([1, -1, 1])
        out.append(procrustes_rotation(template, q))
    return np.array(out)


def main() -> None:
    model = FaceModel.load()
    template = (
        model.landmark_vertices(
            model.vertices(torch.zeros(1, model.n_identity), torch.zeros(1, model.n_expression))
        )[0]
        .double()
        .numpy()
    )
    names = (DATA / "filelist.txt").read_text().split()
    held_out = {p.name for p in DATA.glob("image*.jpg")}
    keep = np.array([n not in held_out for n in names])
    rotations = face_rotations(np.load(DATA / "AFLW2000-3D.pts68.npy")[keep], template)
    yaw_gt = np.load(DATA / "AFLW2000-3D.pose.npy")[keep]
    raw = matrices_to_benchmark_deg(rotations, np.eye(3))
    frontal = np.abs(yaw_gt) <= FRONTAL_YAW_DEG
    pitch, _, roll = raw[frontal].mean(0)
    # the benchmark's angles are those of R.T, so frontal faces are levelled by C = R: minus them
    offset = -np.array([pitch, 0.0, roll])
    calibrated = matrices_to_benchmark_deg(rotations, rotvec_to_matrix(np.radians(offset)))
    report = {
        "offset_rotvec_deg": offset.round(3).tolist(),
        "faces": int(keep.sum()),
        "frontal_faces": int(frontal.sum()),
        "yaw_mae_deg_vs_ground_truth": float(np.abs(calibrated[:, 1] - yaw_gt).mean()),
        "frontal_mean_pitch_roll_after_deg": calibrated[frontal][:, [0, 2]].mean(0).round(3).tolist(),
        "yaw_mae_deg_before": float(np.abs(raw[:, 1] - yaw_gt).mean()),
        "how": "Procrustes of the mean ICT landmarks to the 3D ground-truth landmarks of AFLW2000-3D "
        "(images held out of our measurement excluded); offset levels the |yaw| <= 10 deg faces "
        "(their mean pitch and roll -> 0): an assumption about photos. scripts/calibrate_pose.py",
    }
    out = resources_root() / CALIBRATION_FILE
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
