"""A contact sheet of real faces: per face the input, and per method its re-render, albedo, shading
and bare geometry, so a reader sees what the figures measure (``cest eval --plots``)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from engine.reconstruct.views import label_panel, render_views

PANELS = (("render", "render"), ("albedo", "albedo"), ("shading", "shading"), ("overlay", "mesh"))
SHORT = {"cest-unconditional": "ablation"}  # labels must fit a 128-pixel panel
CELL = 128  # pixels per panel


def pick_evenly(items: list, count: int) -> list:
    """``count`` items spread over the list (all of them if it is shorter), in order."""
    if len(items) <= count:
        return list(items)
    return [items[i] for i in np.linspace(0, len(items) - 1, count).round().astype(int)]


def face_row(recons: dict, image: np.ndarray, face, first: bool) -> np.ndarray:
    """One row: the input crop, then each method's panels (labelled on the first row)."""
    cells: list[np.ndarray] = []
    for name, recon in recons.items():
        views = render_views(recon, recon.reconstruct_face(image, face))
        if not cells:
            cells.append(_cell(views["input"], "input" if first else ""))
        cells += [
            _cell(views[key], f"{SHORT.get(name, name)} {text}" if first else "") for key, text in PANELS
        ]
    return np.concatenate(cells, axis=1)


def _cell(image: np.ndarray, text: str) -> np.ndarray:
    small = cv2.resize(image, (CELL, CELL), interpolation=cv2.INTER_AREA)
    return label_panel(small, text) if text else small


def write_contact_sheet(recons: dict, faces: list[tuple[np.ndarray, object]], path: Path) -> Path | None:
    """Rows for (image, detected face) pairs with every method in ``recons`` -> a PNG at ``path``."""
    rows = [face_row(recons, image, face, i == 0) for i, (image, face) in enumerate(faces)]
    if not rows:
        return None
    sheet = np.concatenate(rows, axis=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    return path


def sheet_for_images(
    paths: list[Path], methods: list[str], weights: dict, device: str, detector, out: Path, count: int
) -> Path | None:
    """The contact sheet of ``count`` of ``paths`` (spread evenly; each image's largest face)."""
    from engine.detect import create_detector
    from engine.evaluation.common import method_reconstructors
    from engine.io.image import load_image

    det = detector if hasattr(detector, "detect") else create_detector(detector)
    recons, _ = method_reconstructors(methods, weights, device, det)
    faces = []
    for path in pick_evenly(paths, count):
        image = load_image(path)
        found = det.detect(image)
        if found:
            faces.append((image, found[0]))
    return write_contact_sheet(recons, faces, out)
