"""The jaw contour that slides: which face-model vertex each of the 17 iBUG jaw points is in a view.

An annotator puts the jaw points on the face's visible outline. On a frontal face that is the
calibrated vertex of each point; on the side of a face turned away it is the silhouette, nearer the
nose. Each jaw point gets a line of vertices on the model, from the calibrated vertex inward, and in
a given view the point is the vertex of its line that lies furthest out along the point's outward
direction (the "landmark marching" of Zhu et al., CVPR 2015, restricted to move inward).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

N_JAW = 17


@dataclass(frozen=True)
class JawLines:
    # (17, K) vertex indices, front first, the calibrated vertex last (repeated as padding)
    vertices: torch.Tensor
    directions: torch.Tensor  # (17, 3) each point's outward direction, model frame

    def to(self, device) -> JawLines:
        return JawLines(self.vertices.to(device), self.directions.to(device))


def build_jaw_lines(
    mean: np.ndarray,
    landmarks: np.ndarray,
    symmetry: np.ndarray,
    skin: np.ndarray,
    bins: int = 10,
    band: float = 0.5,
    depth: float = 3.0,
) -> JawLines:
    """Lines from the mean shape (V, 3) cm, the 68 landmark vertices, the mirror table (V,) and a
    (V,) bool mask of the vertices a contour may use. A line runs from the calibrated vertex of a jaw
    point toward a centre at the height of points 0 and 16, at most ``depth`` cm long and ``band`` cm
    wide; the right half mirrors the left, so flipped faces stay consistent."""
    jaw = landmarks[:N_JAW]
    centre = np.array([0.0, mean[jaw[[0, 16]], 1].mean()])
    lines: list[list[int]] = [[] for _ in range(N_JAW)]
    directions = np.zeros((N_JAW, 3))
    on_midline = symmetry == np.arange(len(symmetry))
    for j in range(N_JAW // 2 + 1):
        usable = skin & on_midline if j == N_JAW // 2 else skin  # the chin's line is its own mirror
        lines[j], directions[j] = _line(mean, jaw[j], centre, usable, bins, band, depth)
        lines[16 - j] = [int(symmetry[v]) for v in lines[j]]
        directions[16 - j] = directions[j] * (-1.0, 1.0, 1.0)
    width = max(len(line) for line in lines)
    padded = [line + [line[-1]] * (width - len(line)) for line in lines]
    return JawLines(torch.tensor(padded, dtype=torch.long), torch.tensor(directions, dtype=torch.float32))


def _line(mean, vertex, centre, skin, bins, band, depth) -> tuple[list[int], np.ndarray]:
    """The vertices of one jaw point's line, front first, ending at the point's own vertex."""
    offset = mean[vertex, :2] - centre
    reach = float(np.linalg.norm(offset))
    direction = offset / reach
    rel = mean[:, :2] - centre
    along = rel @ direction
    across = np.abs(rel @ np.array([-direction[1], direction[0]]))
    usable = skin & (across < band) & (mean[:, 2] > mean[vertex, 2] - 0.3)
    edges = np.linspace(max(reach - depth, 0.0), reach, bins + 1)
    line = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        in_bin = np.flatnonzero(usable & (along >= lo) & (along < hi))
        if in_bin.size:
            line.append(int(in_bin[np.argmin(across[in_bin])]))
    line = [v for v in line if v != vertex] + [int(vertex)]
    return line, np.array([direction[0], direction[1], 0.0])


def select_jaw(lines: JawLines, points_xy: torch.Tensor, outward_xy: torch.Tensor) -> torch.Tensor:
    """(B, 17, K, 2) the lines' vertices in the view and (B, 17, 2) the points' outward directions
    there (both in any one 2D frame of the view) -> (B, 17) the chosen vertex of each line."""
    score = (points_xy * outward_xy[:, :, None]).sum(-1)
    pick = score.argmax(-1, keepdim=True)
    return torch.gather(lines.vertices.expand(points_xy.shape[0], -1, -1), 2, pick)[..., 0]


def outward_in_view(lines: JawLines, rotation_matrix: torch.Tensor) -> torch.Tensor:
    """(B, 3, 3) model -> camera rotation -> (B, 17, 2) the outward directions in camera x, y."""
    return (lines.directions.to(rotation_matrix) @ rotation_matrix.transpose(1, 2))[..., :2]
