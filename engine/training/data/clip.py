"""The unit of training data: a clip of K frames of one person, and how clips become a batch.

A clip is a dict: ``image`` (K, 3, S, S) uint8, ``landmarks`` (K, 68, 2) crop pixels, optional
``mask`` (K, 1, S, S) float or uint8 x 255 (a known face mask; otherwise one is drawn from the landmarks) and,
for synthetic faces, ``params`` (FaceParams of the K frames: the ground truth).
"""

from __future__ import annotations

import cv2
import numpy as np
import torch

from engine.camera import pixels_to_ndc
from engine.detect import IBUG68_FLIP
from engine.params import FaceParams

MIRROR_68 = IBUG68_FLIP  # iBUG 68-point index of each point's mirror twin (one table, engine.detect)


def face_mask(landmarks: np.ndarray, size: int, forehead: float = 0.4) -> np.ndarray:
    """(S, S) float mask: the hull of the jaw and the brows raised by ``forehead`` x brow-to-chin."""
    brows = landmarks[17:27]
    up = landmarks[27] - landmarks[8]  # chin -> nose bridge, roughly 'up' in the image
    raised = brows + forehead * up
    hull = cv2.convexHull(np.concatenate([landmarks[:17], brows, raised]).astype(np.float32))
    mask = np.zeros((size, size), np.uint8)
    cv2.fillConvexPoly(mask, np.round(hull * 16).astype(np.int32), 1, cv2.LINE_8, shift=4)
    return mask.astype(np.float32)


def flip_clip(clip: dict) -> dict:
    """Mirror a real clip left-right (images, landmarks, masks); no ground truth survives it."""
    size = clip["image"].shape[-1]
    flipped = dict(clip)
    flipped["image"] = clip["image"].flip(-1)
    lm = clip["landmarks"][:, MIRROR_68].clone()
    lm[..., 0] = size - 1 - lm[..., 0]
    flipped["landmarks"] = lm
    if clip.get("mask") is not None:
        flipped["mask"] = clip["mask"].flip(-1)
    flipped.pop("params", None)
    return flipped


def collate(clips: list[dict], forehead: float = 0.4) -> dict[str, torch.Tensor]:
    """Concatenate clips into one batch of frames with ``clip_id`` per frame.

    Keys: image (N,3,S,S) float [0,1], landmarks (N,68,2) crop NDC, face_mask (N,1,S,S),
    clip_id (N,), gt_has (N,) and, where any clip is synthetic, the gt_* fields.
    """
    size = clips[0]["image"].shape[-1]
    images, landmarks, masks, ids, gts = [], [], [], [], []
    for i, clip in enumerate(clips):
        k = clip["image"].shape[0]
        images.append(clip["image"].float() / 255)
        landmarks.append(pixels_to_ndc(clip["landmarks"].float(), size))
        mask = clip.get("mask")
        if mask is None:
            lm = clip["landmarks"].numpy()
            mask = torch.from_numpy(np.stack([face_mask(p, size, forehead) for p in lm]))[:, None]
        masks.append(mask.float() / 255 if mask.dtype == torch.uint8 else mask.float())
        ids.append(torch.full((k,), i, dtype=torch.long))
        gts.append(clip.get("params"))
    batch = {
        "image": torch.cat(images),
        "landmarks": torch.cat(landmarks),
        "face_mask": torch.cat(masks),
        "clip_id": torch.cat(ids),
    }
    batch.update(_ground_truth(gts, [c["image"].shape[0] for c in clips]))
    return batch


def _ground_truth(gts: list[FaceParams | None], counts: list[int]) -> dict[str, torch.Tensor]:
    has = torch.cat([torch.full((k,), gt is not None) for gt, k in zip(gts, counts)])
    if not has.any():
        return {"gt_has": has}
    template = next(gt for gt in gts if gt is not None)
    filled = [
        gt if gt is not None else template.map(lambda t, k=k: torch.zeros(k, *t.shape[1:]))
        for gt, k in zip(gts, counts)
    ]
    params = FaceParams.cat(filled)
    return {"gt_has": has, **{f"gt_{k}": v for k, v in params.fields().items()}}
