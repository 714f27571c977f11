"""The 68-point iBUG tables: Face Mesh -> iBUG indices and the left-right mirror."""

from __future__ import annotations

import numpy as np

# ------------------------------------------------- MediaPipe 468 -> iBUG 68

# Face Mesh vertex indices for each iBUG point; pairs are averaged. Started from the mapping
# published in PeizhiYan/Mediapipe_2_Dlib_Landmarks (used by several face-reconstruction
# repos), then tuned where dlib's iBUG-trained 68-point predictor disagreed systematically
# (mean over 429 frames of 8 clips, in inter-ocular units: 0.084 -> 0.063): the jaw points
# slid along the face oval, the brows set mid-brow (upper + lower edge), the outer lower lip.
# The jaw stays approximate: the mesh's face oval is a 3D contour, not the visible jaw
# outline that iBUG annotates, so on a turned face it stays on the cheek.
# fmt: off
MESH_TO_IBUG68: tuple[tuple[int, ...], ...] = (
    (127,), (234, 93), (132,), (58,), (172,), (136,), (149,), (148,), (152,),       # jaw 0-8
    (377,), (378,), (365,), (397,), (288,), (361,), (454, 323), (356,),             # jaw 9-16
    (70, 46), (63, 53), (105, 52), (66, 65), (107, 55),                             # brow 17-21
    (336, 285), (296, 295), (334, 282), (293, 283), (300, 276),                     # brow 22-26
    (168, 6), (197,), (195, 5), (4,), (75,), (97,), (2,), (326,), (305,),           # nose 27-35
    (33,), (160,), (158,), (133,), (153,), (144,),                                  # eye 36-41
    (362,), (385,), (387,), (263,), (373,), (380,),                                 # eye 42-47
    (61,), (39,), (37,), (0,), (267,), (269,), (291,),                              # upper lip 48-54
    (405,), (314,), (17,), (84,), (181,),                                           # lower lip 55-59
    (78,), (82,), (13,), (312,), (308,), (317,), (14,), (87,),                      # inner lips 60-67
)
# fmt: on


def _ibug68_flip() -> np.ndarray:
    jaw = list(range(16, -1, -1))
    brows = list(range(26, 16, -1))
    nose = [27, 28, 29, 30, 35, 34, 33, 32, 31]
    eyes = [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40]
    mouth = [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55, 64, 63, 62, 61, 60, 67, 66, 65]
    return np.array(jaw + brows + nose + eyes + mouth)


# IBUG68_FLIP[i]: the point that becomes point i when the image is mirrored left-right.
IBUG68_FLIP = _ibug68_flip()


def flip_landmarks(landmarks: np.ndarray, width: int) -> np.ndarray:
    """Landmarks of the left-right mirrored image (width in pixels)."""
    flipped = landmarks[IBUG68_FLIP].copy()
    flipped[:, 0] = width - 1 - flipped[:, 0]
    return flipped


def mesh_to_ibug68(mesh: np.ndarray) -> np.ndarray:
    """(468, 2+) Face Mesh points -> (68, 2) iBUG points."""
    pairs = np.array([(i[0], i[-1]) for i in MESH_TO_IBUG68])
    return ((mesh[pairs[:, 0], :2] + mesh[pairs[:, 1], :2]) / 2).astype(np.float32)
