"""Head pose in the convention of the public benchmarks (AFLW2000-3D / 300W-LP, as 3DDFA fits them).

Our viewpoint: ``R = Rz(roll) @ Ry(yaw) @ Rx(pitch)`` rotates model space (x right, y up, z toward
the viewer) into camera space. 3DDFA's ``Pose_Para`` builds the same physical rotation as
``Rx'(pitch) @ Ry'(yaw) @ Rz'(roll)`` from *transposed* axis matrices, so its angles are those of
``R.T`` decomposed our way. Its canonical ("frontal") frame is the Basel Face Model's, which is not
the ICT model's: a fixed rotation ``C`` (resources/facemodel/pose_calibration.json, made by
scripts/calibrate_pose.py) takes our frame to theirs first: ``R_bench = R @ C.T``.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from engine.camera import euler_to_matrix, matrix_to_euler
from engine.resources import resources_root

CALIBRATION_FILE = "facemodel/pose_calibration.json"


def rotvec_to_matrix(rotvec: np.ndarray) -> np.ndarray:
    """Rodrigues: axis * angle (3,) radians -> (3, 3)."""
    theta = float(np.linalg.norm(rotvec))
    if theta < 1e-12:
        return np.eye(3)
    k = np.asarray(rotvec, np.float64) / theta
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(theta) * kx + (1 - np.cos(theta)) * kx @ kx


@lru_cache(maxsize=4)
def frame_offset(path: str | None = None) -> np.ndarray:
    """C (3, 3): our model frame -> the benchmark's (identity if no calibration ships)."""
    file = Path(path) if path else resources_root() / CALIBRATION_FILE
    if not file.is_file():
        return np.eye(3)
    return rotvec_to_matrix(np.radians(json.loads(file.read_text())["offset_rotvec_deg"]))


def matrices_to_benchmark_deg(matrices: np.ndarray, offset: np.ndarray | None = None) -> np.ndarray:
    """(N, 3, 3) our camera rotations -> (N, 3) pitch, yaw, roll in degrees, benchmark convention."""
    c = frame_offset() if offset is None else offset
    bench = np.asarray(matrices, np.float64) @ c.T
    return np.degrees(matrix_to_euler(torch.from_numpy(bench.transpose(0, 2, 1))).numpy())


def benchmark_pose_deg(rotation: torch.Tensor | np.ndarray, offset: np.ndarray | None = None) -> np.ndarray:
    """(N, 3) our pitch/yaw/roll radians (FaceParams.rotation) -> benchmark pitch/yaw/roll degrees."""
    angles = torch.as_tensor(np.asarray(rotation, np.float64)).reshape(-1, 3)
    return matrices_to_benchmark_deg(euler_to_matrix(angles).numpy(), offset)


def pose_mae(pred_deg: np.ndarray, gt_deg: np.ndarray) -> np.ndarray:
    """Per-face absolute errors (N, 3); yaw differences wrap at 180 degrees."""
    diff = np.abs(np.asarray(pred_deg) - np.asarray(gt_deg))
    return np.minimum(diff, 360 - diff)
