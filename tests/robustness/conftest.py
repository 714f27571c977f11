"""Shared pieces of the robustness suite: hostile inputs made on the fly, and a fast Reconstructor.

Most tests here are about what happens *around* the maths (reading, detecting, batching, writing),
so they share one ``method="fit"`` Reconstructor whose fit is a closed-form stand-in (the fit and the
renderer are covered by `tests/engine/model/test_fit.py`, `tests/engine/test_cli.py` and the others; here a few tests ask
for the real landmark fit, and `test_images.py::test_real_fit_on_a_non_ascii_path` runs it all).
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import ROOT, SAMPLE

PYTHON = sys.executable


def cheap_fit(reconstructor, landmark_fit: bool = False):
    """A stand-in for Reconstructor._fit (no unwrap, no delighting: grey albedo, ambient light).

    The viewpoint is a closed-form similarity from the landmarks (roll from the eye line, scale from
    their extent, translation from their centre) and the identity a few numbers read off their
    normalised shape, so it differs between faces; ``landmark_fit`` runs the real landmark fit of
    viewpoint and shape instead (about 0.4 s of CPU a face)."""
    from engine.camera import pixels_to_ndc
    from engine.model.fit import fit_landmarks
    from engine.params import FaceParams
    from engine.sh import ambient_light

    model = reconstructor.model

    def _fit(crops: torch.Tensor, landmarks_px: torch.Tensor):
        n = crops.shape[0]
        ndc = pixels_to_ndc(landmarks_px.float(), crops.shape[-1])
        if landmark_fit:
            fit = fit_landmarks(model, ndc)
            pose = fit.rotation, fit.translation, fit.scale, fit.identity, fit.expression
        else:
            eyes = ndc[:, 42:48].mean(1) - ndc[:, 36:42].mean(1)
            roll = -torch.atan2(eyes[:, 1], eyes[:, 0])  # NDC y points down, model y up
            lo, hi = ndc.amin(1), ndc.amax(1)
            extent = (hi - lo).amax(-1, keepdim=True)
            centre = (lo + hi) / 2
            identity = torch.zeros(n, model.n_identity, device=crops.device)
            identity[:, :20] = ((ndc[:, 27:37] - centre[:, None]) / extent[:, None]).reshape(n, 20)
            rotation = torch.stack([torch.zeros_like(roll), torch.zeros_like(roll), roll], -1)
            expression = torch.zeros(n, model.n_expression, device=crops.device)
            pose = rotation, centre, extent / 14.7, identity, expression
        albedo = torch.full((n, 3, 32, 32), 0.6, device=crops.device)
        params = FaceParams(*pose, albedo, ambient_light(n, device=crops.device))
        return params, {"visibility": torch.ones(n, 1, 32, 32, device=crops.device)}

    return _fit


@pytest.fixture(scope="session")
def fast_reconstructor():
    from engine.reconstruct.reconstructor import Reconstructor

    recon = Reconstructor(method="fit")
    recon._fit = cheap_fit(recon)
    return recon


def cheap_views(reconstructor, recon) -> dict[str, np.ndarray]:
    """A stand-in for engine.reconstruct.views.render_views: the crop for every picture (rendering is the
    same whatever file the face came from; test_real_fit_on_a_non_ascii_path renders for real)."""
    names = ("input", "render", "albedo", "shading", "normals", "depth", "overlay")
    return {name: recon.crop for name in names}


def cheap_side_by_side(reconstructor, recon, frame) -> np.ndarray:
    """A stand-in for engine.reconstruct.video._side_by_side: the crop twice, or the frame and black."""
    from engine.reconstruct.video import _fit_square

    if recon is None:
        small = _fit_square(frame, 256)
        return np.concatenate([small, np.zeros_like(small)], axis=1)
    return np.concatenate([recon.crop, recon.crop], axis=1)


@pytest.fixture
def landmark_fit(monkeypatch, fast_reconstructor):
    """The fast Reconstructor with the real landmark fit of viewpoint and shape, for one test."""
    monkeypatch.setattr(fast_reconstructor, "_fit", cheap_fit(fast_reconstructor, landmark_fit=True))
    return fast_reconstructor


@pytest.fixture
def quick_video(monkeypatch):
    """reconstruct_video without re-rendering every frame for reconstruction.mp4."""
    import engine.reconstruct.video

    monkeypatch.setattr(engine.reconstruct.video, "_side_by_side", cheap_side_by_side)


@pytest.fixture
def cli(monkeypatch, fast_reconstructor, quick_video):
    """engine.cli.main, reusing the fast Reconstructor (the CLI would otherwise build its own), with
    the quick stand-ins for rendering."""
    import engine.reconstruct.reconstructor
    import engine.reconstruct.views
    from engine.cli import main

    monkeypatch.setattr(engine.reconstruct.reconstructor, "Reconstructor", lambda *a, **k: fast_reconstructor)
    monkeypatch.setattr(engine.reconstruct.views, "render_views", cheap_views)
    return main


@pytest.fixture(scope="session")
def sample() -> np.ndarray:
    return np.asarray(Image.open(SAMPLE).convert("RGB"))


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("error:")]


def jpeg_bytes(image: np.ndarray | Image.Image, **options) -> bytes:
    buffer = io.BytesIO()
    img = image if isinstance(image, Image.Image) else Image.fromarray(image)
    img.save(buffer, format="JPEG", **options)
    return buffer.getvalue()


def eye_geometry(landmarks: np.ndarray) -> tuple[float, float]:
    """(angle of the line from the image-left eye to the image-right eye in degrees,
    vertical distance mouth - eyes in pixels: positive when the eyes are above the mouth)."""
    left, right = landmarks[36:42].mean(0), landmarks[42:48].mean(0)
    mouth = landmarks[48:68].mean(0)
    d = right - left
    angle = float(np.degrees(np.arctan2(d[1], d[0])))
    return angle, float(mouth[1] - (left[1] + right[1]) / 2)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@contextmanager
def small_tmpfs(folder: Path, size: str):
    """A tmpfs of ``size`` mounted at folder (needs root and a mount-capable sandbox; else skip)."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        mounted = (
            os.geteuid() == 0
            and subprocess.run(
                ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                capture_output=True,
                timeout=30,
            ).returncode
            == 0
        )
    except (OSError, subprocess.SubprocessError):  # no mount binary, or it hung
        mounted = False
    if not mounted:
        pytest.skip("cannot mount a tmpfs here (not root, or no mount permission)")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


__all__ = [
    "ROOT",
    "SAMPLE",
    "PYTHON",
    "error_lines",
    "jpeg_bytes",
    "eye_geometry",
    "read_jsonl",
    "small_tmpfs",
]
