"""What every benchmark shares: method names and weights, predicted landmarks, summaries, the machine."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import numpy as np
import torch

from engine.camera import ndc_to_pixels
from engine.facemodel import FaceModel
from engine.params import FaceParams
from engine.resources import resources_root

METHODS = ("cest", "cest-unconditional", "fit", "mean")
DEFAULT_WEIGHTS = {
    "cest": "weights/cest_default.safetensors",
    "cest-unconditional": "weights/cest_unconditional.safetensors",
}
DEFAULT_OUT = Path("benchmarks")


def default_weights(method: str) -> Path:
    return resources_root() / DEFAULT_WEIGHTS[method]


def method_reconstructors(
    methods: list[str], weights: dict | None, device: str, detector
) -> tuple[dict, dict]:
    """A Reconstructor per method ("fit", "cest", "cest-unconditional"), scoring the networks
    themselves (no display detail); methods without weights go to ``skipped`` with the reason."""
    from engine.reconstruct.reconstructor import Reconstructor

    recons, skipped = {}, {}
    for name in methods:
        if name == "fit":
            recons[name] = Reconstructor(method="fit", device=device, detector=detector)
            continue
        if name not in DEFAULT_WEIGHTS:  # "mean": a baseline of the synthetic benchmark only
            skipped[name] = "not a method that reconstructs photos (the mean face needs ground truth)"
            continue
        path = Path((weights or {}).get(name) or default_weights(name))
        if not path.is_file():
            skipped[name] = f"no weights at {path}"
            continue
        recons[name] = Reconstructor(
            method="cest", weights=path, device=device, detector=detector, detail=False
        )
    return recons, skipped


# ------------------------------------------------------------------------------------ scoring


def predicted_landmarks(params: FaceParams, model: FaceModel, size: int) -> torch.Tensor:
    _, _, ndc = params.geometry(model)
    return ndc_to_pixels(model.landmark_vertices(ndc, params.rotation)[..., :2], size)


def image_landmarks(rec, model: FaceModel) -> np.ndarray:
    """(68, 2) model landmarks of a Reconstruction, reprojected into its image's pixels."""
    from engine.crop import crop_to_image
    from engine.reconstruct.reconstructor import CROP_SIZE

    crop_pts = predicted_landmarks(rec.params, model, CROP_SIZE)[0].numpy()
    return crop_to_image(crop_pts, rec.crop_box, CROP_SIZE)


def uv_chart_mask(model: FaceModel, size: int) -> torch.Tensor:
    from engine.render.uv import uv_layout

    return uv_layout(model, size)[2].float()[None, None].cpu()


def summarise(values: np.ndarray) -> dict:
    finite = values[np.isfinite(values)]
    if not len(finite):
        return {"mean": None, "median": None, "std": None, "n": 0}
    return {
        "mean": float(finite.mean()),
        "median": float(np.median(finite)),
        "std": float(finite.std()),
        "n": len(finite),
    }


def machine_info() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
