"""The synthetic benchmark's inputs: N held-out synthetic faces with their ground truth, and the
landmarks every method is given (the detector's where it finds the face, truth + noise elsewhere)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from engine.evaluation import metrics
from engine.facemodel import FaceModel
from engine.params import FaceParams
from engine.training.data.synthetic import WRONG_FACE_NME


@dataclass
class SyntheticSet:
    """N held-out synthetic faces and their ground truth (all on the CPU)."""

    images: torch.Tensor  # (N, 3, S, S) float [0, 1]
    mask: torch.Tensor  # (N, 1, S, S) exact (binary) face coverage
    depth: torch.Tensor  # (N, 1, S, S) NDC z, larger = closer
    normals: torch.Tensor  # (N, 3, S, S) camera space
    albedo: torch.Tensor  # (N, 3, T, T) UV map
    landmarks: torch.Tensor  # (N, 68, 2) true landmark vertices, image pixels
    params: FaceParams
    seed: int
    indices: list[int]

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def size(self) -> int:
        return self.images.shape[-1]

    def uint8(self, i: int) -> np.ndarray:
        return (self.images[i].permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)

    def pose_deg(self) -> np.ndarray:
        """(N, 3) pitch, yaw, roll in degrees."""
        return np.degrees(self.params.rotation.numpy())

    def light_deg(self) -> np.ndarray:
        """(N, 2) azimuth, elevation (degrees) of the dominant light direction."""
        return light_angles(self.params.light)


def light_angles(light: torch.Tensor) -> np.ndarray:
    """(N, 9, 3) SH light -> (N, 2) azimuth (0 = from the camera, + = from the viewer's right) and
    elevation of its band-1 direction (the basis order is 1, x, y, z, ...: engine.sh)."""
    d = light[:, 1:4].mean(-1).double()
    d = d / d.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    azimuth = torch.rad2deg(torch.atan2(d[:, 0], d[:, 2]))
    elevation = torch.rad2deg(torch.asin(d[:, 1].clamp(-1, 1)))
    return torch.stack([azimuth, elevation], 1).numpy()


def synthetic_set(
    n: int,
    seed: int = 0,
    image_size: int = 128,
    texture_size: int = 64,
    supersample: int = 1,
    face_model: FaceModel | None = None,
    progress: bool = True,
) -> SyntheticSet:
    """Render ``n`` held-out faces (one frame per synthetic person) with their ground-truth maps.

    A thin adapter over engine.training.data.synthetic: clips of one frame, ``with_maps`` on.
    """
    from engine.training.data.synthetic import SyntheticConfig, SyntheticFaces

    config = SyntheticConfig(
        image_size=image_size, texture_size=texture_size, frames=1, supersample=supersample, with_maps=True
    )
    data = SyntheticFaces(config, length=n, seed=seed, split="heldout", face_model=face_model)
    items = [data[i] for i in tqdm(range(n), desc="rendering test faces", unit="face", disable=not progress)]
    return SyntheticSet(
        images=torch.cat([it["image"] for it in items]).float() / 255,
        mask=torch.cat([(it["mask_exact"] > 0.5).float() for it in items]),
        depth=torch.cat([it["depth"] for it in items]),
        normals=torch.cat([it["normals"] for it in items]),
        albedo=torch.cat([it["params"].albedo for it in items]),
        landmarks=torch.cat([it["landmarks_true"] for it in items]),
        params=FaceParams.cat([it["params"] for it in items]),
        seed=seed,
        indices=list(range(n)),
    )


@dataclass
class LandmarkInputs:
    """The landmarks every method is given, and where each came from."""

    landmarks: torch.Tensor  # (N, 68, 2) image pixels
    source: list[str]  # per image: "detector", "noise (no face)", "noise (wrong face)"
    detector: str
    detector_nme: list[float | None]  # per image, None where it found nothing
    sigma_iod: np.ndarray  # (68, 2) noise std used for the fallbacks, in inter-ocular distances
    sigma_from: str

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for s in self.source:
            out[s] = out.get(s, 0) + 1
        return out

    def summary(self) -> dict:
        found = [v for v in self.detector_nme if v is not None]
        used = [v for v, s in zip(self.detector_nme, self.source) if s == "detector" and v is not None]
        return {
            "detector": self.detector,
            "counts": self.counts(),
            "detector_found": len(found),
            "detector_nme_mean_used": float(np.mean(used)) if used else None,
            "fallback_noise_sigma_iod_mean": float(np.sqrt(np.mean(self.sigma_iod**2))),
            "fallback_noise_sigma_from": self.sigma_from,
            "wrong_face_nme_threshold": WRONG_FACE_NME,
        }


def source_landmarks(
    testset: SyntheticSet, detector, seed: int = 0, default_sigma_iod: float = 0.02, progress: bool = True
) -> LandmarkInputs:
    """Detector landmarks where it finds the face; elsewhere truth + noise of its measured size."""
    truth = testset.landmarks.double()
    iod = metrics.inter_ocular(truth).numpy()
    detected: list[np.ndarray | None] = []
    nme: list[float | None] = []
    for i in tqdm(range(len(testset)), desc="detecting landmarks", unit="face", disable=not progress):
        faces = detector.detect(testset.uint8(i))
        if faces:
            points = np.asarray(faces[0].landmarks, np.float64)
            detected.append(points)
            nme.append(float(metrics.landmark_nme(torch.from_numpy(points)[None], truth[i : i + 1])[0]))
        else:
            detected.append(None)
            nme.append(None)
    good = [i for i, v in enumerate(nme) if v is not None and v <= WRONG_FACE_NME]
    if len(good) >= 20:  # enough to measure each point's spread
        resid = np.stack([(detected[i] - truth[i].numpy()) / iod[i] for i in good])
        sigma = np.sqrt((resid**2).mean(0))
        sigma_from = f"per point and axis, RMS detector error on {len(good)} detected faces"
    elif good:
        resid = np.stack([(detected[i] - truth[i].numpy()) / iod[i] for i in good])
        sigma = np.full((68, 2), np.sqrt((resid**2).mean()))
        sigma_from = f"one value, RMS detector error on {len(good)} detected faces"
    else:
        sigma = np.full((68, 2), default_sigma_iod)
        sigma_from = f"default {default_sigma_iod} IOD (the detector found no face to measure)"
    rng = np.random.default_rng([seed, 68])
    out, source = truth.numpy().copy(), []
    for i in range(len(testset)):
        if i in good:
            out[i], kind = detected[i], "detector"
        else:
            out[i] = truth[i].numpy() + rng.normal(0, 1, (68, 2)) * sigma * iod[i]
            kind = "noise (no face)" if detected[i] is None else "noise (wrong face)"
        source.append(kind)
    name = getattr(detector, "name", type(detector).__name__)
    return LandmarkInputs(torch.from_numpy(out).float(), source, name, nme, sigma, sigma_from)
