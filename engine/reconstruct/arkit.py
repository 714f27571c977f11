"""ARKit blendshape curves in the CSV layout of Live Link Face (Unreal's ARKit capture app).

Columns: ``Timecode, BlendShapeCount``, the 52 ARKit blendshapes in Live Link Face's order, then
``HeadYaw, HeadPitch, HeadRoll`` (radians); one row per video frame. Live Link Face also writes
six eye-rotation columns after the head's; we have no eye rotation and leave them out, so
BlendShapeCount is 55 (the number of value columns). Our face model's expressions map by name
(``eyeBlink_L`` -> ``EyeBlinkLeft``); ARKit's single ``BrowInnerUp`` and ``CheekPuff`` are the
mean of our left and right ones; ``TongueOut`` (we have no tongue) is 0.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from engine.io import atomic

ARKIT_NAMES = (
    "EyeBlinkLeft",
    "EyeLookDownLeft",
    "EyeLookInLeft",
    "EyeLookOutLeft",
    "EyeLookUpLeft",
    "EyeSquintLeft",
    "EyeWideLeft",
    "EyeBlinkRight",
    "EyeLookDownRight",
    "EyeLookInRight",
    "EyeLookOutRight",
    "EyeLookUpRight",
    "EyeSquintRight",
    "EyeWideRight",
    "JawForward",
    "JawRight",
    "JawLeft",
    "JawOpen",
    "MouthClose",
    "MouthFunnel",
    "MouthPucker",
    "MouthRight",
    "MouthLeft",
    "MouthSmileLeft",
    "MouthSmileRight",
    "MouthFrownLeft",
    "MouthFrownRight",
    "MouthDimpleLeft",
    "MouthDimpleRight",
    "MouthStretchLeft",
    "MouthStretchRight",
    "MouthRollLower",
    "MouthRollUpper",
    "MouthShrugLower",
    "MouthShrugUpper",
    "MouthPressLeft",
    "MouthPressRight",
    "MouthLowerDownLeft",
    "MouthLowerDownRight",
    "MouthUpperUpLeft",
    "MouthUpperUpRight",
    "BrowDownLeft",
    "BrowDownRight",
    "BrowInnerUp",
    "BrowOuterUpLeft",
    "BrowOuterUpRight",
    "CheekPuff",
    "CheekSquintLeft",
    "CheekSquintRight",
    "NoseSneerLeft",
    "NoseSneerRight",
    "TongueOut",
)
HEAD_COLUMNS = ("HeadYaw", "HeadPitch", "HeadRoll")
HEADER = ("Timecode", "BlendShapeCount", *ARKIT_NAMES, *HEAD_COLUMNS)


def _ours(arkit: str) -> str:
    """``EyeBlinkLeft`` -> ``eyeBlink_L``; ``JawLeft`` -> ``jaw_L`` (checked against the model later)."""
    name = arkit[0].lower() + arkit[1:]
    for side, tag in (("Left", "_L"), ("Right", "_R")):
        if name.endswith(side):
            return name[: -len(side)] + tag
    return name


def arkit_mapping(our_names: list[str]) -> list[list[int]]:
    """For each ARKit name, the indices of our expressions whose mean it is (empty: always 0)."""
    index = {name: i for i, name in enumerate(our_names)}
    mapping = []
    for arkit in ARKIT_NAMES:
        plain = arkit[0].lower() + arkit[1:]
        for candidates in ([_ours(arkit)], [plain], [plain + "_L", plain + "_R"]):
            if all(c in index for c in candidates):
                mapping.append([index[c] for c in candidates])
                break
        else:
            mapping.append([])
    return mapping


def to_arkit(weights: np.ndarray, our_names: list[str]) -> np.ndarray:
    """(N, n_expression) our weights -> (N, 52) ARKit weights."""
    weights = np.asarray(weights, np.float64)
    out = np.zeros((len(weights), len(ARKIT_NAMES)))
    for column, sources in enumerate(arkit_mapping(our_names)):
        if sources:
            out[:, column] = weights[:, sources].mean(axis=1)
    return out


def timecode(seconds: float, fps: float) -> str:
    """Live Link Face's ``HH:MM:SS:FF.mmm`` (FF the frame within the second, .mmm its fraction)."""
    whole, frames = divmod(max(seconds, 0.0) * fps + 1e-6, fps)  # whole seconds, frames into the next
    frame = int(frames)
    fraction = min(int((frames - frame) * 1000), 999)
    h, rest = divmod(int(whole), 3600)
    return f"{h:02d}:{rest // 60:02d}:{rest % 60:02d}:{frame:02d}.{fraction:03d}"


def write_csv(
    path: str | Path,
    times: np.ndarray,
    weights: np.ndarray,
    head_ypr: np.ndarray,
    our_names: list[str],
    fps: float,
) -> Path:
    """One row per frame: ``times`` (N,) s, ``weights`` (N, n_expression), ``head_ypr`` (N, 3) rad."""
    arkit = to_arkit(weights, our_names)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(HEADER)
    count = len(ARKIT_NAMES) + len(HEAD_COLUMNS)
    for t, row, head in zip(times, arkit, head_ypr):
        writer.writerow(
            [timecode(float(t), fps), count, *(f"{v:.6f}" for v in row), *(f"{v:.6f}" for v in head)]
        )
    atomic.write_text(path, buffer.getvalue())
    return Path(path)
