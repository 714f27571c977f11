"""A reconstructed video as animation files: ``animation.glb`` (the textured head, its expressions as
morph targets, the performance as one animation) and ``blendshapes.csv`` (ARKit curves in Live Link
Face's layout). Both come from frames.jsonl and the clip's one shape; the curves are smoothed and
frames without a face follow the no-face policy of engine/reconstruct/motion.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from engine.facemodel import FaceModel
from engine.headpose import benchmark_pose_deg
from engine.io.gltf import HeadAnimation, matrix_to_quaternion, write_glb
from engine.reconstruct import arkit
from engine.reconstruct import motion as mo
from engine.reconstruct.reconstructor import to_uint8

ANIMATION_FILES = ("animation.glb", "blendshapes.csv")


# What the animation reads of a frames.jsonl line: keeping only these keeps a long video's records
# small (a whole line, with its landmarks, identity and light, is about ten times the size).
RECORD_FIELDS = ("frame", "time_s", "face", "track", "expression", "viewpoint", "crop_centre_side_px")


def read_records(path: str | Path, fields: tuple[str, ...] | None = RECORD_FIELDS) -> list[dict]:
    """frames.jsonl's lines, with only ``fields`` (None: every field)."""
    with open(path) as lines:
        records = (json.loads(line) for line in lines if line.strip())
        if fields is None:
            return list(records)
        return [{k: r[k] for k in fields if k in r} for r in records]


def main_track_frame(records: list[dict]) -> int:
    """The last frame of the track seen in the most frames: its running means are the clip's one shape
    (as engine.reconstruct.video.MainShape chooses during a run)."""
    counts: dict[int, int] = {}
    last: dict[int, int] = {}
    for record in records:
        if record.get("face"):
            track = int(record.get("track", 0))
            counts[track] = counts.get(track, 0) + 1
            last[track] = int(record["frame"])
    if not counts:
        raise ValueError("no frame of the video has a face")
    return last[max(counts, key=lambda t: (counts[t], t))]


def head_animation(
    model: FaceModel, identity: torch.Tensor, albedo: torch.Tensor, motion: mo.Motion
) -> HeadAnimation:
    """The glTF content: the neutral face of ``identity`` (1, n_identity) textured with ``albedo``
    (1, 3, T, T), and keyframes of the smoothed, gap-filled ``motion``."""
    with torch.no_grad():
        neutral = model.vertices(
            identity.to(model.device), torch.zeros(1, model.n_expression, device=model.device)
        )
    times = mo.key_times(motion)
    curves = mo.sample(motion, times)
    e = model.n_expression
    return HeadAnimation(
        vertices=neutral[0].cpu().numpy() / 100.0,
        faces=model.faces.cpu().numpy(),
        uvs=model.uvs.cpu().numpy(),
        texture=to_uint8(albedo),
        targets=model.expression_basis.cpu().numpy() / 100.0,
        target_names=model.expression_names,
        times=times,
        weights=np.clip(curves[:, :e], 0, 1),
        rotations=matrix_to_quaternion(mo.head_rotation_matrices(curves[:, e : e + 3])),
        translations=curves[:, e + 3 :],
    )


def head_yaw_pitch_roll(rotation: np.ndarray) -> np.ndarray:
    """(N, 3) our pitch/yaw/roll -> (N, 3) yaw, pitch, roll in radians, frontal = 0 (benchmark frame)."""
    pitch_yaw_roll = np.radians(benchmark_pose_deg(rotation))
    return pitch_yaw_roll[:, [1, 0, 2]]


def write_animation(
    folder: str | Path,
    model: FaceModel,
    identity: torch.Tensor,
    albedo: torch.Tensor,
    fps: float,
    frame_size: tuple[int, int],
    records: list[dict] | None = None,
    out_dir: str | Path | None = None,
) -> list[Path]:
    """Write animation.glb and blendshapes.csv into ``out_dir`` (default: ``folder``) from ``folder``'s
    frames.jsonl (or the given ``records``)."""
    folder = Path(folder)
    out_dir = Path(out_dir) if out_dir else folder
    out_dir.mkdir(parents=True, exist_ok=True)
    records = records if records is not None else read_records(folder / "frames.jsonl")
    motion = mo.smooth(mo.motion_from_records(records, fps, frame_size, model.n_expression))
    filled = mo.fill_gaps(motion)
    csv_path = arkit.write_csv(
        out_dir / "blendshapes.csv",
        filled.times,
        filled.expression,
        head_yaw_pitch_roll(filled.rotation),
        model.expression_names,
        fps,
    )
    glb_path = write_glb(head_animation(model, identity, albedo, motion), out_dir / "animation.glb")
    return [glb_path, csv_path]
