"""Frame rendered faces the way engine.crop frames detected ones, so synthetic crops match real ones.

engine.crop cuts a square around the bounding box of the 68 landmarks. A rendered face is framed
by the same rule applied to its landmark vertices; the crop is a 2D similarity, so framing only
changes the camera's scale, translation and roll.

The face model's landmark vertices agree with a detector's landmarks on the real clips in
../shared/data/faces: the scale implied by the jaw width (0.101 NDC/cm) is within 5% of those
implied by the eyes, brows, nose and mouth (0.102-0.111), so synthetic and real faces fill their
crops alike.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from engine.camera import ndc_to_pixels
from engine.crop import crop_params_from_landmarks, image_to_ndc
from engine.params import FaceParams

VIRTUAL = 1024  # pixels of the virtual image a face is 'detected' in


def crop_similarity(landmarks_px: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(2x2 linear, offset) mapping virtual-image pixels to the NDC of the crop around them."""
    box = crop_params_from_landmarks(landmarks_px)
    probe = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]) * VIRTUAL / 2 + VIRTUAL / 4
    mapped = np.asarray(image_to_ndc(probe, box), np.float64)
    linear = np.stack([mapped[1] - mapped[0], mapped[2] - mapped[0]], 1) / (VIRTUAL / 2)
    return linear, mapped[0] - linear @ probe[0]


def frame_in_crop(params: FaceParams, landmarks_ndc: torch.Tensor) -> FaceParams:
    """Move faces given in a virtual NDC frame into the crop engine.crop would cut around them."""
    rotation, scale, translation = params.rotation.clone(), params.scale.clone(), params.translation.clone()
    pixels = ndc_to_pixels(landmarks_ndc.detach().cpu().double(), VIRTUAL).numpy()
    for i, points in enumerate(pixels):
        linear, offset = crop_similarity(points)
        # virtual NDC -> virtual px is px = (ndc + 1) V/2 - 0.5; compose with px -> crop NDC
        ndc_linear = linear * (VIRTUAL / 2)
        ndc_offset = linear @ np.full(2, VIRTUAL / 2 - 0.5) + offset
        k = math.sqrt(abs(np.linalg.det(ndc_linear)))
        # [[c, s], [-s, c]] in y-down NDC is a roll of +atan2(s, c) (docs/conventions.md)
        rotation[i, 2] += math.atan2(ndc_linear[0, 1], ndc_linear[0, 0])
        scale[i] *= k
        translation[i] = torch.from_numpy(ndc_linear @ translation[i].double().numpy() + ndc_offset).float()
    return params.replace(rotation=rotation, scale=scale, translation=translation)
